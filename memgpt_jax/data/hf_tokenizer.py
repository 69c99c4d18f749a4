"""A Hugging Face tokenizer.json (the `tokenizers` package): the vocabulary of a
pretrained model, data.tokenizer='huggingface'.

Read, like the SentencePiece models, as a table of the UTF-8 bytes each id stands for:
byte-level vocabularies (GPT-2's family) spell bytes with printable characters, which
are mapped back; SentencePiece-style ones (Llama's family) spell spaces '▁' and keep
bytes as '<0xNN>' pieces. Special tokens stand for no bytes. Text is encoded the way
the tokenizer's own normalizer and pre-tokenizer say (one that prefixes a space counts
that space).
"""

import json
import pathlib

import ml_collections
import numpy as np
import tokenizers

from memgpt_jax.data.errors import DataError
from memgpt_jax.data.pieces import PieceTable


def byte_level_alphabet() -> dict[str, int]:
  """{character: byte} of byte-level BPE: printable bytes spell themselves, the others
  (controls, space, and a few) take the characters from U+0100 on, in byte order."""
  printable = [*range(ord('!'), ord('~') + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
  others = [b for b in range(256) if b not in printable]
  alphabet = {chr(b): b for b in printable}
  alphabet.update({chr(0x100 + i): b for i, b in enumerate(others)})
  return alphabet


def _decoder_types(spec: dict | None) -> set[str]:
  """The types of a tokenizer.json's decoder, its Sequence's parts included."""
  if not spec:
    return set()
  return {spec['type']} | {t for part in spec.get('decoders', []) for t in _decoder_types(part)}


class HuggingFaceTokenizer(PieceTable):
  """tokenizer.json read as a table of bytes; eos and pad are named tokens of it."""

  def __init__(self, path: pathlib.Path, eos_token: str, pad_token: str):
    try:
      self._tokenizer = tokenizers.Tokenizer.from_file(str(path))
      spec = json.loads(path.read_text(encoding='utf-8'))
    except Exception as error:  # pylint: disable=broad-except; the library raises its own
      raise DataError(f'data.huggingface.tokenizer_file {path} is not a tokenizer.json '
                      f'({str(error).splitlines()[0] if str(error) else type(error).__name__})'
                      ) from None
    special = {i for i, token in self._tokenizer.get_added_tokens_decoder().items()
               if token.special}
    byte_level = 'ByteLevel' in _decoder_types(spec.get('decoder'))
    alphabet = byte_level_alphabet() if byte_level else None
    size = self._tokenizer.get_vocab_size(with_added_tokens=True)
    super().__init__([self._bytes_of(i, alphabet, i in special) for i in range(size)])
    self.eos_id = self._id_of(eos_token, 'eos_token', path)
    self.pad_id = self._id_of(pad_token or eos_token, 'pad_token', path)

  def _id_of(self, token: str, setting: str, path: pathlib.Path) -> int:
    token_id = self._tokenizer.token_to_id(token) if token else None
    if token_id is None:
      raise DataError(f'data.huggingface.{setting} {token!r} is not a token of {path} '
                      "(the model's end-of-text token, e.g. '<|endoftext|>' or '</s>')")
    return token_id

  def _bytes_of(self, token_id: int, alphabet: dict[str, int] | None, special: bool) -> bytes:
    piece = self._tokenizer.id_to_token(token_id)
    if piece is None:
      return b''
    if alphabet is None and len(piece) == 6 and piece.startswith('<0x') and piece.endswith('>'):
      return bytes((int(piece[3:5], 16),))  # byte fallback, in the vocabulary or added
    if special:
      return b''
    if alphabet is not None:
      return bytes(alphabet[c] for c in piece if c in alphabet)
    return piece.replace('\u2581', ' ').encode('utf-8')

  def encode(self, text: str) -> np.ndarray:
    """Returns the int32 ids of `text` (no special tokens added)."""
    return np.asarray(self._tokenizer.encode(text, add_special_tokens=False).ids, np.int32)


def load(hf_config: ml_collections.ConfigDict) -> HuggingFaceTokenizer:
  """The tokenizer data.huggingface names."""
  if not hf_config.tokenizer_file:
    raise DataError("data.tokenizer='huggingface' needs data.huggingface.tokenizer_file "
                    '(a tokenizer.json)')
  path = pathlib.Path(hf_config.tokenizer_file).expanduser()
  if not path.is_file():
    raise DataError(f'data.huggingface.tokenizer_file {path} does not exist')
  return HuggingFaceTokenizer(path, hf_config.eos_token, hf_config.pad_token)
