"""Token ids as the UTF-8 bytes they stand for: what every tokenizer decodes, counts
(the denominator of bits per byte) and streams with."""

import codecs
from typing import Iterable, Sequence

import numpy as np


class StreamDecoder:
  """Turns token ids into text as soon as they form whole UTF-8 characters.

  The sampler streams tokens to a terminal one at a time; a multi-byte character
  must not be printed before all its bytes have arrived. Text only ever grows, so
  no id changes what was printed before it.
  """

  def __init__(self, piece_bytes: Sequence[bytes]):
    self._piece_bytes = piece_bytes  # id -> the bytes it stands for; others print nothing
    self._decoder = codecs.getincrementaldecoder('utf-8')(errors='replace')

  def push(self, token_id: int) -> str:
    """Adds one id; returns the characters it completes ('' for special ids)."""
    token_id = int(token_id)
    if not 0 <= token_id < len(self._piece_bytes):
      return ''
    return self._decoder.decode(self._piece_bytes[token_id])

  def finish(self) -> str:
    """Flushes a trailing incomplete character (as U+FFFD), as `decode` would."""
    return self._decoder.decode(b'', final=True)


class PieceTable:
  """A tokenizer read as a table of the UTF-8 bytes each id stands for: text is the
  concatenation of its pieces, so decoding a continuation on its own gives exactly the
  text that follows the prompt, and bits per byte counts the bytes the text has."""

  def __init__(self, piece_bytes: Sequence[bytes]):
    self._piece_bytes = tuple(piece_bytes)
    self.vocab_size = len(self._piece_bytes)
    self._num_bytes = np.array([len(b) for b in self._piece_bytes], np.int64)  # [vocab]

  def decode(self, ids: Iterable[int]) -> str:
    """Returns the text of the ids, skipping special ids."""
    ids = np.asarray(ids).reshape(-1)
    ids = ids[(ids >= 0) & (ids < self.vocab_size)]
    data = b''.join(self._piece_bytes[i] for i in ids)
    return data.decode('utf-8', errors='replace')

  def num_bytes(self, ids: np.ndarray) -> int:
    """Counts the UTF-8 bytes the ids stand for: the denominator of bits per byte."""
    ids = np.asarray(ids)
    return int(self._num_bytes[ids[(ids >= 0) & (ids < self.vocab_size)]].sum())

  def decoder(self) -> StreamDecoder:
    """Returns a fresh incremental decoder for streaming output."""
    return StreamDecoder(self._piece_bytes)
