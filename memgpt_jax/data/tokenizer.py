"""Tokenizers: bytes (nothing to train or ship), a SentencePiece model of the train
split, or a pretrained model's Hugging Face tokenizer.json (data/hf_tokenizer.py).

All count the UTF-8 bytes their ids stand for, so bits per byte is comparable
between them, and all stream text to a terminal as soon as characters are whole.
"""

import io
import os
import pathlib
from typing import Iterable, Iterator

from absl import logging
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
import sentencepiece

from memgpt_jax.data import builders
from memgpt_jax.data import records
from memgpt_jax.data import hf_tokenizer
from memgpt_jax.data.errors import DataError
from memgpt_jax.data.pieces import PieceTable, StreamDecoder

TOKENIZERS = ('bytes', 'sentencepiece', 'huggingface')
MODEL_FILENAME = 'tokenizer.model'  # in the workdir: trained on first use, then reused
MODEL_TYPES = ('unigram', 'bpe')
# SentencePiece trains on lines: longer ones are cut into pieces of this many characters
# (at most 4 UTF-8 bytes each, hence max_sentence_length = 4 * this).
_MAX_LINE_CHARS = 4096
# The trained model depends on the thread count (the order of float sums), so it is
# fixed: every machine trains the same model from the same data.
_TRAIN_THREADS = 8


class ByteTokenizer:
  """Ids 0..255 are UTF-8 bytes; then padding and the document separator."""

  num_byte_ids = 256
  pad_id = 256
  eos_id = 257  # Ends every document, so packed examples show where one starts.
  vocab_size = 258
  _piece_bytes = tuple(bytes((i,)) for i in range(num_byte_ids))

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
    return StreamDecoder(self._piece_bytes)


class SentencePieceTokenizer(PieceTable):
  """A SentencePiece model, read as a table of the UTF-8 bytes each id stands for.

  Text is the concatenation of its pieces: decoding a continuation on its own gives
  exactly the text that follows the prompt (no leading space dropped), and bits per
  byte counts the same bytes the byte tokenizer would. The models `make_tokenizer`
  trains keep text exactly (identity normalization, no dummy prefix, byte fallback);
  a model_file trained otherwise encodes text the way its normalizer says.
  """

  def __init__(self, model_proto: bytes):
    self._processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
    super().__init__([self._bytes_of(i) for i in range(self._processor.vocab_size())])
    self.pad_id = self._processor.pad_id()
    self.eos_id = self._processor.eos_id()  # Ends every document, as for bytes.

  def _bytes_of(self, token_id: int) -> bytes:
    if self._processor.is_byte(token_id):  # '<0xNN>'
      return bytes((int(self._processor.id_to_piece(token_id)[1:-1], 16),))
    if (self._processor.is_control(token_id) or self._processor.is_unknown(token_id) or
        self._processor.is_unused(token_id)):
      return b''
    return self._processor.id_to_piece(token_id).replace('\u2581', ' ').encode('utf-8')

  def encode(self, text: str) -> np.ndarray:
    """Returns the int32 ids of `text` (no eos appended)."""
    return np.asarray(self._processor.encode(text), dtype=np.int32)



Tokenizer = ByteTokenizer | SentencePieceTokenizer | hf_tokenizer.HuggingFaceTokenizer


def declared_vocab_size(data_config: ml_collections.ConfigDict) -> int:
  """The vocabulary size the config asks for, without a tokenizer (a SentencePiece
  model that is trained on first use need not exist yet): for timing and shapes."""
  if data_config.tokenizer == 'sentencepiece':
    return int(data_config.sentencepiece.vocab_size)
  return make_tokenizer(data_config).vocab_size


def make_tokenizer(data_config: ml_collections.ConfigDict,
                   workdir: str | pathlib.Path | None = None) -> Tokenizer:
  """Returns the tokenizer named by `data_config.tokenizer`.

  A SentencePiece model comes from data.sentencepiece.model_file if set, else from
  <workdir>/tokenizer.model, which is trained on the train split on first use (by
  process 0; processes that share no filesystem with it train the same model).
  """
  if data_config.tokenizer == 'bytes':
    return ByteTokenizer()
  if data_config.tokenizer not in TOKENIZERS:
    raise DataError(f'unknown data.tokenizer {data_config.tokenizer!r} '
                    f'(choose {" or ".join(TOKENIZERS)})')
  if builders.is_synthetic(data_config):
    raise DataError(f"data.tokenizer={data_config.tokenizer!r} does not fit the synthetic "
                    f"source {data_config.source!r} (its rows are already token ids): use "
                    "data.tokenizer='bytes'")
  if data_config.tokenizer == 'huggingface':
    return hf_tokenizer.load(data_config.huggingface)
  spm_config = data_config.sentencepiece
  _check_settings(spm_config)
  if spm_config.model_file:
    return _load(pathlib.Path(spm_config.model_file).expanduser())
  if workdir is None:
    raise DataError("data.tokenizer='sentencepiece' needs a workdir to keep the model it "
                    'trains in, or data.sentencepiece.model_file')
  path = pathlib.Path(workdir) / MODEL_FILENAME
  if jax.process_count() > 1:
    if jax.process_index() == 0 and not path.exists():
      _save(path, _train(data_config))
    multihost_utils.sync_global_devices('memgpt_jax.data.tokenizer')
  if not path.exists():
    _save(path, _train(data_config))
  tokenizer = _load(path)
  if tokenizer.vocab_size != spm_config.vocab_size:
    raise DataError(f'{path} has {tokenizer.vocab_size} pieces but '
                    f'data.sentencepiece.vocab_size is {spm_config.vocab_size}: use a new '
                    '--workdir')
  return tokenizer


def _check_settings(spm_config: ml_collections.ConfigDict):
  if spm_config.model_type not in MODEL_TYPES:
    raise DataError(f'unknown data.sentencepiece.model_type {spm_config.model_type!r} '
                    f'(choose {" or ".join(MODEL_TYPES)})')
  # 256 byte pieces + pad, eos and unk, then at least one piece of text.
  if not isinstance(spm_config.vocab_size, int) or spm_config.vocab_size < 260:
    raise DataError('data.sentencepiece.vocab_size must be an integer of at least 260 '
                    f'(256 bytes, pad, eos, unk and text), not {spm_config.vocab_size!r}')
  if spm_config.max_train_chars < 1 or not 0 < spm_config.character_coverage <= 1:
    raise DataError('need data.sentencepiece.max_train_chars >= 1 and '
                    '0 < data.sentencepiece.character_coverage <= 1')


def _load(path: pathlib.Path) -> SentencePieceTokenizer:
  if not path.is_file():
    raise DataError(f'no sentencepiece model at {path}')
  try:
    tokenizer = SentencePieceTokenizer(path.read_bytes())
  except RuntimeError as e:
    raise DataError(f'{path} is not a sentencepiece model') from e
  if tokenizer.pad_id < 0 or tokenizer.eos_id < 0:
    raise DataError(f'{path} has no pad or no eos piece: train it with pad_id and eos_id set')
  return tokenizer


def _training_lines(data_config: ml_collections.ConfigDict) -> Iterator[str]:
  """The train split's non-empty lines, in order, up to max_train_chars characters."""
  builder = builders.prepare(data_config)
  source = builders.split_source(builder, data_config.get('train_split', 'train'))
  budget = data_config.sentencepiece.max_train_chars
  for index in range(len(source)):
    for text in records.record_texts(source[index], data_config):
      for line in text.split('\n'):
        for start in range(0, len(line), _MAX_LINE_CHARS):
          chunk = line[start:start + _MAX_LINE_CHARS]
          yield chunk
          budget -= len(chunk)
          if budget <= 0:
            return


def _train(data_config: ml_collections.ConfigDict) -> bytes:
  """Trains a model on the train split; returns its serialized proto.

  Deterministic: no sampling or shuffling of sentences and a fixed thread count.
  """
  spm_config = data_config.sentencepiece
  lines = list(_training_lines(data_config))  # Read first: data errors raise as themselves.
  if not lines:
    raise DataError('the train split has no text to train the sentencepiece tokenizer on')
  logging.info('training a %s sentencepiece tokenizer of %d pieces on %d lines',
               spm_config.model_type, spm_config.vocab_size, len(lines))
  model = io.BytesIO()
  try:
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model,
        model_type=spm_config.model_type, vocab_size=spm_config.vocab_size,
        character_coverage=spm_config.character_coverage,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, byte_fallback=True,
        # Text round-trips exactly: no normalization, no dummy space at the start.
        normalization_rule_name='identity', remove_extra_whitespaces=False,
        add_dummy_prefix=False, allow_whitespace_only_pieces=True,  # indentation pieces
        input_sentence_size=0, shuffle_input_sentence=False, num_threads=_TRAIN_THREADS,
        max_sentence_length=4 * _MAX_LINE_CHARS, minloglevel=2)
  except RuntimeError as e:  # e.g. a vocab_size the data cannot fill
    reason = str(e).splitlines()[0].rsplit('] ', 1)[-1]  # without the C++ check's source
    raise DataError(f'training the sentencepiece tokenizer failed: {reason}') from e
  return model.getvalue()


def _save(path: pathlib.Path, model: bytes):
  """Writes to a temporary name, then renames: a failed run leaves no half file."""
  path.parent.mkdir(parents=True, exist_ok=True)
  temporary = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
  try:
    temporary.write_bytes(model)
    temporary.replace(path)
  finally:
    temporary.unlink(missing_ok=True)
