"""Byte-level tokenizer: no files to train or ship, and exact bits per byte."""

import codecs
from typing import Iterable

import ml_collections
import numpy as np

from memgpt_jax.data.errors import DataError


class StreamDecoder:
  """Turns token ids into text as soon as they form whole UTF-8 characters.

  The sampler streams tokens to a terminal one at a time; a multi-byte character
  must not be printed before all its bytes have arrived.
  """

  def __init__(self):
    self._decoder = codecs.getincrementaldecoder('utf-8')(errors='replace')

  def push(self, token_id: int) -> str:
    """Adds one id; returns the characters it completes ('' for special ids)."""
    token_id = int(token_id)
    if not 0 <= token_id < ByteTokenizer.num_byte_ids:
      return ''
    return self._decoder.decode(bytes((token_id,)))

  def finish(self) -> str:
    """Flushes a trailing incomplete character (as U+FFFD), as `decode` would."""
    return self._decoder.decode(b'', final=True)


class ByteTokenizer:
  """Ids 0..255 are UTF-8 bytes; then padding and the document separator."""

  num_byte_ids = 256
  pad_id = 256
  eos_id = 257  # Ends every document, so packed examples show where one starts.
  vocab_size = 258

  def encode(self, text: str) -> np.ndarray:
    """Returns the int32 ids of `text`'s UTF-8 bytes (no eos appended)."""
    return np.frombuffer(text.encode('utf-8'), dtype=np.uint8).astype(np.int32)

  def decode(self, ids: Iterable[int]) -> str:
    """Returns the text of the byte ids, skipping special ids."""
    ids = np.asarray(ids).reshape(-1)
    data = ids[(ids >= 0) & (ids < self.num_byte_ids)].astype(np.uint8)
    return data.tobytes().decode('utf-8', errors='replace')

  def num_bytes(self, ids: np.ndarray) -> int:
    """Counts the byte ids: the denominator of bits per byte."""
    ids = np.asarray(ids)
    return int(np.count_nonzero((ids >= 0) & (ids < self.num_byte_ids)))

  def decoder(self) -> StreamDecoder:
    """Returns a fresh incremental decoder for streaming output."""
    return StreamDecoder()


def make_tokenizer(data_config: ml_collections.ConfigDict) -> ByteTokenizer:
  """Returns the tokenizer named by `data_config.tokenizer`."""
  if data_config.tokenizer != 'bytes':
    raise DataError(f'unknown data.tokenizer {data_config.tokenizer!r} (choose bytes)')
  return ByteTokenizer()
