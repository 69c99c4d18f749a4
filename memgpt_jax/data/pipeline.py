"""Grain input pipeline for causal LM: per-host shards, shuffled, packed, checkpointable.

Batches are numpy dicts, B_host = train.batch_size // process_count rows of
N = segment_len * num_segments tokens:
  inputs  int32 [B_host, N]  a packed stream of documents, each ended by eos
  targets int32 [B_host, N]  inputs shifted left by one token
  mask  float32 [B_host, N]  1 where the target is a real token, 0 on padding
Synthetic tasks (memgpt_jax/data/synthetic.py) are not packed: each row is one
example of N + 1 tokens and the mask is 1 only where the target is an answer. Their
evaluation splits per distance may have other lengths (any multiple of segment_len).
"""

import functools
from typing import Any

import grain
import jax
import ml_collections
import numpy as np

from memgpt_jax.data import builders
from memgpt_jax.data.errors import DataError
from memgpt_jax.data.tokenizer import ByteTokenizer

# Documents read ahead by the reader threads: a batch needs about one stdlib file.
_PREFETCH_DOCS = 64


class _PackIterator(grain.DatasetIterator):
  """Concatenates token arrays and cuts the stream into chunks of `length`.

  The state is (parent state before the current document, offset into it): plain
  ints, so it survives a JSON round trip exactly. (Grain 0.2.18's
  ConcatThenSplitIterDataset stores tuples in its state and restores the wrong
  position once JSON has turned them into lists.)
  """

  def __init__(self, parent: grain.DatasetIterator, length: int, pad_id: int):
    super().__init__(parent)
    self._length = length
    self._pad_id = pad_id
    self._doc_state = parent.get_state()
    self._doc = np.zeros(0, np.int32)
    self._offset = 0

  def __next__(self) -> np.ndarray:
    chunk = np.full(self._length, self._pad_id, np.int32)
    filled = 0
    while filled < self._length:
      if self._offset == len(self._doc):
        doc_state = self._parent.get_state()
        try:
          doc = next(self._parent)
        except StopIteration:
          if filled:
            break  # The end of a finite stream: the rest stays padding.
          raise
        self._doc_state, self._doc, self._offset = doc_state, doc, 0
      n = min(self._length - filled, len(self._doc) - self._offset)
      chunk[filled:filled + n] = self._doc[self._offset:self._offset + n]
      filled += n
      self._offset += n
    return chunk

  def get_state(self) -> dict[str, Any]:
    return {'doc': self._doc_state, 'offset': self._offset}

  def set_state(self, state: dict[str, Any]) -> None:
    self._parent.set_state(state['doc'])
    self._doc_state = state['doc']
    self._doc = next(self._parent) if state['offset'] else np.zeros(0, np.int32)
    self._offset = state['offset']


class _PackIterDataset(grain.IterDataset):

  def __init__(self, parent: grain.IterDataset, length: int, pad_id: int):
    super().__init__(parent)
    self._length = length
    self._pad_id = pad_id

  def __iter__(self) -> _PackIterator:
    return _PackIterator(self._parent.__iter__(), self._length, self._pad_id)


def _tokenize(record: dict[str, Any], tokenizer: ByteTokenizer) -> np.ndarray:
  ids = tokenizer.encode(record['text'].decode('utf-8'))
  return np.append(ids, np.int32(tokenizer.eos_id))


def _to_example(chunk: np.ndarray, pad_id: int) -> dict[str, np.ndarray]:
  return {'inputs': chunk[:-1], 'targets': chunk[1:],
          'mask': (chunk[1:] != pad_id).astype(np.float32)}


def _packed_examples(docs: grain.MapDataset, config: ml_collections.ConfigDict,
                     tokenizer: ByteTokenizer) -> grain.IterDataset:
  """Tokenizes documents in reader threads (order kept) and packs them into examples."""
  read = grain.ReadOptions(num_threads=config.data.read_threads,
                           prefetch_buffer_size=_PREFETCH_DOCS)
  docs = docs.map(functools.partial(_tokenize, tokenizer=tokenizer)).to_iter_dataset(read)
  seq_len = config.model.segment_len * config.model.num_segments
  chunks = _PackIterDataset(docs, seq_len + 1, tokenizer.pad_id)
  return chunks.map(functools.partial(_to_example, pad_id=tokenizer.pad_id))


def _row_example(record: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  tokens = np.asarray(record['tokens'], np.int32)
  return {'inputs': tokens[:-1], 'targets': tokens[1:],
          'mask': np.asarray(record['answers'][1:], np.float32)}


def _prepare(config: ml_collections.ConfigDict):
  return builders.prepare(config.data, config.model.segment_len, config.model.num_segments)


def _processes(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  # Resolved at call time: jax.distributed.initialize() may run after import.
  return (jax.process_index() if process_index is None else process_index,
          jax.process_count() if process_count is None else process_count)


def _host_batch_size(config: ml_collections.ConfigDict, process_count: int) -> int:
  if config.train.batch_size % process_count:
    raise DataError(f'train.batch_size {config.train.batch_size} does not divide '
                    f'among {process_count} processes')
  return config.train.batch_size // process_count


def make_train_iterator(config: ml_collections.ConfigDict, tokenizer: ByteTokenizer,
                        process_index: int | None = None,
                        process_count: int | None = None) -> grain.DatasetIterator:
  """Endless training batches from this host's shard of the train split.

  Order: shard the records by host, shuffle with data.shuffle_seed (a new order
  every epoch), repeat, tokenize, pack. `get_state()` is JSON-serializable and
  `set_state()` on a fresh iterator continues with exactly the same batches.
  """
  process_index, process_count = _processes(process_index, process_count)
  batch_size = _host_batch_size(config, process_count)
  source = builders.split_source(_prepare(config), 'train')
  shard = grain.MapDataset.source(source)[process_index::process_count]
  if not len(shard):
    raise DataError(f'the train split has {len(source)} documents: too few for '
                    f'{process_count} processes')
  docs = shard.shuffle(seed=config.data.shuffle_seed).repeat()
  if builders.is_synthetic(config.data):
    examples = docs.map(_row_example).to_iter_dataset()
  else:
    examples = _packed_examples(docs, config, tokenizer)
  return iter(examples.batch(batch_size, drop_remainder=True))


def _host_rows(examples: list[dict[str, np.ndarray]], global_size: int, rows: slice,
               pad_id: int) -> dict[str, np.ndarray]:
  """Pads a short global batch with empty rows (mask 0) and stacks this host's rows."""
  blank = {'inputs': np.full_like(examples[0]['inputs'], pad_id),
           'targets': np.full_like(examples[0]['targets'], pad_id),
           'mask': np.zeros_like(examples[0]['mask'])}
  examples = (examples + [blank] * (global_size - len(examples)))[rows]
  return {k: np.stack([e[k] for e in examples]) for k in blank}


def make_eval_iterator(config: ml_collections.ConfigDict, tokenizer: ByteTokenizer,
                       split: str = 'validation', process_index: int | None = None,
                       process_count: int | None = None) -> grain.IterDataset:
  """The first train.eval_batches batches of `split`, in order: finite, same every time.

  Every host packs the same global batches and takes its own rows, so the
  global batches do not depend on the number of processes. A short split ends
  with padding (mask 0) in its last chunk and rows.
  """
  process_index, process_count = _processes(process_index, process_count)
  batch_size = _host_batch_size(config, process_count)
  source = builders.split_source(_prepare(config), split)
  if not len(source):
    raise DataError(f'the {split!r} split has no documents')
  if builders.is_synthetic(config.data):
    examples = grain.MapDataset.source(source).map(_row_example).to_iter_dataset()
  else:
    examples = _packed_examples(grain.MapDataset.source(source), config, tokenizer)
  rows = slice(process_index * batch_size, (process_index + 1) * batch_size)
  batch_fn = functools.partial(_host_rows, global_size=config.train.batch_size, rows=rows,
                               pad_id=tokenizer.pad_id)
  batches = examples.batch(config.train.batch_size, drop_remainder=False, batch_fn=batch_fn)
  return grain.experimental.LimitIterDataset(batches, count=config.train.eval_batches)
