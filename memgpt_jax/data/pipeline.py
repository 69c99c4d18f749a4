"""Grain input pipeline: per-host shards, shuffled, packed with document ids, checkpointable.

Batches are numpy dicts, B_host = train.batch_size // process_count rows of
N = segment_len * num_segments tokens:
  inputs   int32 [B_host, N]  packed documents, each ended by eos
  targets  int32 [B_host, N]  inputs shifted left by one token
  mask   float32 [B_host, N]  1 where the target is trained on: a real token of the
                              same document, and for seq2seq a target-side token
  doc_ids  int32 [B_host, N]  1, 2, ... per document in the row; 0 on padding
  prefix    bool [B_host, N]  True on seq2seq inputs (and the eos that ends them)
A causal-LM document may run on into the next row; a seq2seq example never does
(it is truncated to fit one row: inputs first, then targets).

With model.arch='encoder_decoder' a seq2seq example's inputs go to the encoder instead:
  encoder_inputs   int32 [B_host, S]  sources (inputs eos), S = encoder.num_segments * T
  encoder_doc_ids  int32 [B_host, S]  the document id of the target each belongs to
and the decoder's row holds its targets alone, each started by eos (no prefix). The
pairs are packed side by side while both fit; with cross_attention 'last_segment'
(the decoder sees the last source segment and the encoder's final memory) one a row,
its source ending the encoder's row. A source is cut to S tokens, a target to N. Synthetic tasks
(memgpt_jax/data/synthetic.py) are not packed: each row is one example of N + 1
tokens and the mask is 1 only where the target is an answer; their evaluation
splits per distance may have other lengths (any multiple of segment_len).

Training rows mix the corpus, like windows drawn at random from it: documents are
read into windows of at least data.shuffle_window_tokens tokens, each causal-LM
document is cut into pieces of at most N + 1 tokens from a random offset, and the
window's pieces are packed in a random order. The rows of a batch then come from
different documents and places, cut and ordered anew every epoch, a single text
file too. A piece is a document of its own to the packer: its own id, so attention,
memory and pointer start afresh in it. Seq2seq examples stay whole; evaluation packs
whole documents in order. With data.mixture, each task is packed on its own and the
rows are interleaved deterministically in proportion to the tasks' rates.

With data.layout='streams' rows are not packed but continue each other from batch to
batch through whole documents (memgpt_jax/data/streams.py).
"""

import functools
from typing import Any

import grain
import jax
import ml_collections
import numpy as np

from memgpt_jax.data import builders, records, streams
from memgpt_jax.data.errors import DataError

# Documents read ahead by the reader threads: a batch needs about one stdlib file.
_PREFETCH_DOCS = 64
# Per-token fields of a document and of a packed chunk (plus 'docs' in a chunk).
_FIELDS = {'tokens': np.int32, 'prefix': np.bool_, 'loss': np.bool_}


class _PackIterator(grain.DatasetIterator):
  """Concatenates documents and cuts the stream into chunks of `length` tokens.

  A document is a dict of per-token arrays (_FIELDS). With `split_docs` False a
  document that does not fit the rest of a chunk starts the next one instead.
  The state is (parent state before the current document, offset into it): plain
  ints, so it survives a JSON round trip exactly. (Grain 0.2.18's
  ConcatThenSplitIterDataset stores tuples in its state and restores the wrong
  position once JSON has turned them into lists.)
  """

  def __init__(self, parent: grain.DatasetIterator, length: int, pad_id: int,
               split_docs: bool):
    super().__init__(parent)
    self._length = length
    self._pad_id = pad_id
    self._split_docs = split_docs
    self._doc_state = parent.get_state()
    self._doc = None
    self._offset = 0

  def _doc_len(self) -> int:
    return 0 if self._doc is None else len(self._doc['tokens'])

  def __next__(self) -> dict[str, np.ndarray]:
    chunk = {name: np.zeros(self._length, dtype) for name, dtype in _FIELDS.items()}
    chunk['tokens'][:] = self._pad_id
    chunk['docs'] = np.zeros(self._length, np.int32)
    filled, doc_id = 0, 0
    while filled < self._length:
      if self._offset == self._doc_len():
        doc_state = self._parent.get_state()
        try:
          doc = next(self._parent)
        except StopIteration:
          if filled:
            break  # The end of a finite stream: the rest stays padding.
          raise
        self._doc_state, self._doc, self._offset = doc_state, doc, 0
      if not self._split_docs and filled and self._doc_len() > self._length - filled:
        break  # The whole document starts the next chunk.
      n = min(self._length - filled, self._doc_len() - self._offset)
      doc_id += 1
      for name in _FIELDS:
        chunk[name][filled:filled + n] = self._doc[name][self._offset:self._offset + n]
      chunk['docs'][filled:filled + n] = doc_id
      filled += n
      self._offset += n
    return chunk

  def get_state(self) -> dict[str, Any]:
    return {'doc': self._doc_state, 'offset': self._offset}

  def set_state(self, state: dict[str, Any]) -> None:
    self._parent.set_state(state['doc'])
    self._doc_state = state['doc']
    self._doc = next(self._parent) if state['offset'] else None
    self._offset = state['offset']


class _PackIterDataset(grain.IterDataset):

  def __init__(self, parent: grain.IterDataset, length: int, pad_id: int, split_docs: bool):
    super().__init__(parent)
    self._args = (length, pad_id, split_docs)

  def __iter__(self) -> _PackIterator:
    return _PackIterator(self._parent.__iter__(), *self._args)


class _PairPackIterator(grain.DatasetIterator):
  """Packs (source, target) pairs into a source chunk and a target chunk side by side,
  each pair whole (truncated to fit before), the same document id on both sides. The
  state is the parent's before the pair that starts the next chunk."""

  def __init__(self, parent: grain.DatasetIterator, source_len: int, target_len: int,
               pad_id: int, pairs_per_row: int):
    super().__init__(parent)
    self._lengths = {'source': source_len, 'tokens': target_len}
    self._pad_id = pad_id
    self._pairs_per_row = pairs_per_row  # 0: as many as fit
    self._pending, self._pending_state = None, parent.get_state()

  def __next__(self) -> dict[str, np.ndarray]:
    chunk = {name: np.zeros(self._lengths['tokens'], dtype) for name, dtype in _FIELDS.items()}
    chunk['tokens'][:] = self._pad_id
    chunk['docs'] = np.zeros(self._lengths['tokens'], np.int32)
    chunk['source'] = np.full(self._lengths['source'], self._pad_id, np.int32)
    chunk['source_docs'] = np.zeros(self._lengths['source'], np.int32)
    filled = {'source': 0, 'tokens': 0}
    doc_id = 0
    while not self._pairs_per_row or doc_id < self._pairs_per_row:
      if self._pending is None:
        self._pending_state = self._parent.get_state()
        try:
          self._pending = next(self._parent)
        except StopIteration:
          if doc_id:
            break  # The end of a finite stream: the rest stays padding.
          raise
      pair = self._pending
      if doc_id and any(filled[side] + len(pair[side]) > self._lengths[side]
                        for side in filled):
        break  # The pair starts the next chunk.
      doc_id += 1
      span = lambda side: slice(filled[side], filled[side] + len(pair[side]))
      for name in _FIELDS:
        chunk[name][span('tokens')] = pair[name]
      chunk['docs'][span('tokens')] = doc_id
      chunk['source'][span('source')] = pair['source']
      chunk['source_docs'][span('source')] = doc_id
      filled = {side: filled[side] + len(pair[side]) for side in filled}
      self._pending = None
    if self._pairs_per_row == 1:  # the source ends where the encoder ends
      for name in ('source', 'source_docs'):
        chunk[name] = np.roll(chunk[name], self._lengths['source'] - filled['source'])
    return chunk

  def get_state(self) -> dict[str, Any]:
    return {'doc': self._pending_state if self._pending is not None else
            self._parent.get_state()}

  def set_state(self, state: dict[str, Any]) -> None:
    self._parent.set_state(state['doc'])
    self._pending, self._pending_state = None, state['doc']


class _PairPackIterDataset(grain.IterDataset):

  def __init__(self, parent: grain.IterDataset, *args):
    super().__init__(parent)
    self._args = args

  def __iter__(self) -> _PairPackIterator:
    return _PairPackIterator(self._parent.__iter__(), *self._args)


def _pieces(doc: dict[str, np.ndarray], piece_len: int,
            head: int) -> list[dict[str, np.ndarray]]:
  """Cuts a document into [0:head), then pieces of `piece_len` tokens (the last shorter).

  A random head moves every boundary: each occurrence of a document is cut elsewhere."""
  length = len(doc['tokens'])
  starts = np.concatenate([[0], np.arange(head, length, piece_len)])
  ends = np.append(starts[1:], length)
  return [{name: doc[name][a:b] for name in _FIELDS} for a, b in zip(starts, ends)]


def _shuffled_pieces(docs: list[dict[str, np.ndarray]], piece_len: int,
                     rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
  """The pieces of all `docs`, each cut from a head in [1, piece_len], in random order."""
  heads = rng.integers(1, piece_len + 1, size=len(docs))
  pieces = [piece for doc, head in zip(docs, heads) for piece in _pieces(doc, piece_len, head)]
  return [pieces[i] for i in rng.permutation(len(pieces))]


class _WindowShuffleIterator(grain.DatasetIterator):
  """Reads documents into windows and yields each window's pieces in random order.

  A window is the next documents holding at least `window_tokens` tokens (one
  document at least), or one epoch's `epoch_docs` documents if fewer: a corpus smaller
  than the window is not read thousands of times over to fill it. data.shuffle_seed
  and the window's index seed its cuts and order: every epoch is cut and ordered anew,
  and a restore draws the same again.
  The state is (parent state at the window's start, window index, pieces yielded):
  plain ints, as _PackIterator needs; a restore reads the window again and skips the
  pieces yielded.
  """

  def __init__(self, parent: grain.DatasetIterator, window_tokens: int, epoch_docs: int,
               piece_len: int, seed: int):
    super().__init__(parent)
    self._window_tokens = window_tokens
    self._epoch_docs = epoch_docs
    self._piece_len = piece_len
    self._seed = seed
    self._start = parent.get_state()
    self._window = 0
    self._position = 0
    self._queue = None  # The window's pieces once read.

  def _read_window(self) -> list[dict[str, np.ndarray]]:
    docs, tokens = [], 0
    while not docs or (tokens < self._window_tokens and len(docs) < self._epoch_docs):
      try:
        doc = next(self._parent)
      except StopIteration:
        if docs:
          break  # The end of a finite stream: a shorter last window.
        raise
      docs.append(doc)
      tokens += len(doc['tokens'])
    rng = np.random.default_rng([self._seed, self._window])
    return _shuffled_pieces(docs, self._piece_len, rng)

  def __next__(self) -> dict[str, np.ndarray]:
    if self._queue is None:
      self._queue = self._read_window()
    piece = self._queue[self._position]
    self._position += 1
    if self._position == len(self._queue):
      self._start, self._window, self._position, self._queue = (
          self._parent.get_state(), self._window + 1, 0, None)
    return piece

  def get_state(self) -> dict[str, Any]:
    return {'window_start': self._start, 'window': self._window, 'position': self._position}

  def set_state(self, state: dict[str, Any]) -> None:
    self._parent.set_state(state['window_start'])
    self._start, self._window = state['window_start'], state['window']
    self._position = state['position']
    self._queue = self._read_window() if self._position else None


class _WindowShuffleIterDataset(grain.IterDataset):

  def __init__(self, parent: grain.IterDataset, window_tokens: int, epoch_docs: int,
               piece_len: int, seed: int):
    super().__init__(parent)
    self._args = (window_tokens, epoch_docs, piece_len, seed)

  def __iter__(self) -> _WindowShuffleIterator:
    return _WindowShuffleIterator(self._parent.__iter__(), *self._args)


def _document(record: dict[str, Any], data_config: ml_collections.ConfigDict, tokenizer,
              max_len: int) -> dict[str, np.ndarray]:
  """A record's tokens, each document ended by eos.

  LM: text eos, all trained on. seq2seq: inputs eos targets eos, the inputs (and
  their eos) a prefix with no loss; truncated to `max_len` tokens, targets to at
  most half of it first.
  """
  eos = np.int32(tokenizer.eos_id)
  texts = records.record_texts(record, data_config)
  if len(texts) == 1:
    tokens = np.append(tokenizer.encode(texts[0]), eos)
    return {'tokens': tokens, 'prefix': np.zeros(len(tokens), bool),
            'loss': np.ones(len(tokens), bool)}
  targets = np.append(tokenizer.encode(texts[1])[:max_len // 2 - 1], eos)
  inputs = np.append(tokenizer.encode(texts[0])[:max_len - len(targets) - 1], eos)
  prefix = np.arange(len(inputs) + len(targets)) < len(inputs)
  return {'tokens': np.concatenate([inputs, targets]), 'prefix': prefix, 'loss': ~prefix}


def _pair(record: dict[str, Any], data_config: ml_collections.ConfigDict, tokenizer,
          source_len: int, target_len: int) -> dict[str, np.ndarray]:
  """An encoder-decoder example: the source (inputs eos, at most `source_len` tokens)
  and the decoder's document (eos targets eos, at most `target_len`: the first eos
  starts it and is not trained on)."""
  eos = np.int32(tokenizer.eos_id)
  inputs, targets = records.record_texts(record, data_config)
  tokens = np.concatenate([[eos], tokenizer.encode(targets)[:target_len - 2], [eos]])
  return {'source': np.append(tokenizer.encode(inputs)[:source_len - 1], eos),
          'tokens': tokens.astype(np.int32), 'prefix': np.zeros(len(tokens), bool),
          'loss': np.arange(len(tokens)) > 0}


def _to_example(chunk: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """A chunk of N + 1 tokens -> the model's N inputs and their next-token targets
  (and an encoder-decoder chunk's sources as they are)."""
  docs = chunk['docs']
  trained = chunk['loss'][1:] & (docs[1:] == docs[:-1]) & (docs[1:] > 0)
  example = {'inputs': chunk['tokens'][:-1], 'targets': chunk['tokens'][1:],
             'mask': trained.astype(np.float32), 'doc_ids': docs[:-1],
             'prefix': chunk['prefix'][:-1]}
  if 'source' in chunk:
    example.update(encoder_inputs=chunk['source'], encoder_doc_ids=chunk['source_docs'])
  return example


def _encoder_decoder_examples(docs: grain.MapDataset, config: ml_collections.ConfigDict,
                              tokenizer, read: grain.ReadOptions) -> grain.IterDataset:
  """(source, target) pairs packed side by side (model.arch='encoder_decoder')."""
  model = config.model
  source_len = model.encoder.num_segments * model.segment_len
  target_len = _seq_len(config) + 1
  pairs = docs.map(functools.partial(
      _pair, data_config=config.data, tokenizer=tokenizer, source_len=source_len,
      target_len=target_len)).to_iter_dataset(read)
  per_row = 1 if model.encoder.cross_attention == 'last_segment' else 0
  return _PairPackIterDataset(pairs, source_len, target_len, tokenizer.pad_id,
                              per_row).map(_to_example)


def _packed_examples(docs: grain.MapDataset, config: ml_collections.ConfigDict,
                     tokenizer, window_tokens: int, epoch_docs: int) -> grain.IterDataset:
  """Tokenizes documents in reader threads (order kept), shuffles causal-LM pieces
  within windows of `window_tokens` tokens (0: documents whole, in order) or of one
  epoch's `epoch_docs` documents, and packs them into examples."""
  read = grain.ReadOptions(num_threads=config.data.read_threads,
                           prefetch_buffer_size=_PREFETCH_DOCS)
  if config.model.arch == 'encoder_decoder':
    return _encoder_decoder_examples(docs, config, tokenizer, read)
  chunk_len = _seq_len(config) + 1
  docs = docs.map(functools.partial(_document, data_config=config.data, tokenizer=tokenizer,
                                    max_len=chunk_len)).to_iter_dataset(read)
  seq2seq = records.is_seq2seq(config.data)
  if window_tokens and not seq2seq:  # A seq2seq example stays whole: its records are shuffled.
    docs = _WindowShuffleIterDataset(docs, window_tokens, epoch_docs, chunk_len,
                                     config.data.shuffle_seed)
  chunks = _PackIterDataset(docs, chunk_len, tokenizer.pad_id, split_docs=not seq2seq)
  return chunks.map(_to_example)


# data.task_loss: the tokens of a synthetic task's rows that train the model. 'answers'
# (the scored tokens only) or 'all' (every token: a dialogue model learns to write its
# turns too, and a reply that repeats a fact teaches the look-up at every fact).
# Evaluation scores the answers either way.
TRAINED_TOKENS = ('answers', 'all')


def _trained(record: dict[str, np.ndarray], trained: str) -> np.ndarray:
  answers = np.asarray(record['answers'], bool)
  return np.ones_like(answers) if trained == 'all' else answers


def _trained_tokens(config: ml_collections.ConfigDict) -> str:
  """data.task_loss, checked; a text source ignores it (its rows train on every target)."""
  if not builders.is_synthetic(config.data):
    return 'answers'
  trained = config.data.task_loss
  if trained not in TRAINED_TOKENS:
    raise DataError(f'data.task_loss={trained!r} is not one of {", ".join(TRAINED_TOKENS)}')
  return trained


def _row_example(record: dict[str, np.ndarray], trained: str = 'answers') -> dict[str, np.ndarray]:
  tokens = np.asarray(record['tokens'], np.int32)
  return {'inputs': tokens[:-1], 'targets': tokens[1:],
          'mask': _trained(record, trained)[1:].astype(np.float32),
          'doc_ids': np.ones(len(tokens) - 1, np.int32),
          'prefix': np.zeros(len(tokens) - 1, bool)}


def _examples(docs: grain.MapDataset, config: ml_collections.ConfigDict, tokenizer,
              window_tokens: int = 0, epoch_docs: int = 0,
              trained: str = 'answers') -> grain.IterDataset:
  """Model examples; `window_tokens` 0 (evaluation) packs whole documents in order; a
  synthetic task's rows count the `trained` tokens (evaluation: its answers)."""
  if builders.is_synthetic(config.data):
    return docs.map(functools.partial(_row_example, trained=trained)).to_iter_dataset()
  return _packed_examples(docs, config, tokenizer, window_tokens, epoch_docs)


def _prepare(config: ml_collections.ConfigDict):
  return builders.prepare(config.data, *builders.row_layout(config))


def data_fingerprint(config: ml_collections.ConfigDict) -> dict[str, str]:
  """{task name: the name and version of the data it reads}: a text source's name digests
  its files' paths, sizes and times, a synthetic task's its settings. Checkpoints keep
  it, so that a resume on other data (a text file edited since) is refused."""
  return {name: builders.make_builder(task.data, *builders.row_layout(task)).info.full_name
          for name, task in task_configs(config).items()}


def task_configs(config: ml_collections.ConfigDict) -> dict[str, ml_collections.ConfigDict]:
  """{task name: the config with that task's data settings}; {'': config} without a mixture.

  Each entry of data.mixture overrides data.* for its task and adds `rate`.
  """
  mixture = config.data.get('mixture') or {}
  if not mixture:
    return {'': config}
  tasks = {}
  for name, overrides in mixture.items():
    task = config.copy_and_resolve_references()
    with task.unlocked():
      del task.data['mixture']
      for key, value in overrides.items():
        if key != 'rate' and key not in task.data:
          raise DataError(f'data.mixture.{name}.{key} is not a data setting')
        task.data[key] = value
    if not task.data.get('rate', 0) > 0:
      raise DataError(f'data.mixture.{name}.rate must be a positive number')
    tasks[name] = task
  return tasks


def _processes(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  # Resolved at call time: jax.distributed.initialize() may run after import.
  return (jax.process_index() if process_index is None else process_index,
          jax.process_count() if process_count is None else process_count)


def _host_batch_size(config: ml_collections.ConfigDict, process_count: int) -> int:
  if config.train.batch_size % process_count:
    raise DataError(f'train.batch_size {config.train.batch_size} does not divide '
                    f'among {process_count} processes')
  return config.train.batch_size // process_count


def _window_tokens(data_config: ml_collections.ConfigDict) -> int:
  tokens = data_config.shuffle_window_tokens
  if tokens < 0:
    raise DataError(f'data.shuffle_window_tokens {tokens} must be >= 0 (0: documents whole, '
                    'in order)')
  return tokens


def _seq_len(config: ml_collections.ConfigDict) -> int:
  return config.model.segment_len * config.model.num_segments


def _train_records(config: ml_collections.ConfigDict, process_index: int,
                   process_count: int) -> tuple[grain.MapDataset, int]:
  """This host's shard of the train split, shuffled anew every epoch, repeated; and
  how many records an epoch of it holds."""
  source = builders.split_source(_prepare(config), config.data.train_split)
  shard = grain.MapDataset.source(source)[process_index::process_count]
  if not len(shard):
    raise DataError(f'the {config.data.train_split!r} split has {len(source)} records: '
                    f'too few for {process_count} processes')
  return shard.shuffle(seed=config.data.shuffle_seed).repeat(), len(shard)


def _train_examples(config: ml_collections.ConfigDict, tokenizer, process_index: int,
                    process_count: int) -> grain.IterDataset:
  window_tokens = _window_tokens(config.data)
  docs, epoch_docs = _train_records(config, process_index, process_count)
  return _examples(docs, config, tokenizer, window_tokens, epoch_docs, _trained_tokens(config))


def _stream_document(record: dict[str, Any], config: ml_collections.ConfigDict,
                     tokenizer, trained: str) -> dict[str, np.ndarray]:
  """A record as a document of the streams layout: text tokenized whole and ended by
  eos; a synthetic task's example as it is, trained on its `trained` tokens."""
  if builders.is_synthetic(config.data):
    tokens = np.asarray(record['tokens'], np.int32)
    return {'tokens': tokens, 'prefix': np.zeros(len(tokens), bool),
            'loss': _trained(record, trained)}
  return _document(record, config.data, tokenizer, max_len=0)


def _train_documents(config: ml_collections.ConfigDict, tokenizer, process_index: int,
                     process_count: int) -> grain.MapDataset:
  """The streams layout's documents: this host's records, each whole (_stream_document)."""
  docs, _ = _train_records(config, process_index, process_count)
  trained = _trained_tokens(config)
  return docs.map(functools.partial(_stream_document, config=config, tokenizer=tokenizer,
                                    trained=trained))


def make_train_iterator(config: ml_collections.ConfigDict, tokenizer,
                        process_index: int | None = None,
                        process_count: int | None = None) -> grain.DatasetIterator:
  """Endless training batches from this host's shard of the train split(s).

  Order: shard the records by host, shuffle with data.shuffle_seed (a new order
  every epoch), repeat, tokenize, cut causal-LM documents into pieces at random
  offsets and shuffle them within windows of data.shuffle_window_tokens tokens,
  pack; then mix the tasks of a mixture. In the streams layout: stream s of the
  host's rows reads every B_host-th document, whole (streams.train_batches).
  `get_state()` is JSON-serializable and `set_state()` on a fresh iterator
  continues with exactly the same batches.
  """
  process_index, process_count = _processes(process_index, process_count)
  batch_size = _host_batch_size(config, process_count)
  if config.data.layout == 'streams':
    return iter(streams.train_batches(
        _train_documents(config, tokenizer, process_index, process_count), batch_size,
        _seq_len(config), tokenizer.pad_id, config.data.read_threads))
  tasks = task_configs(config)
  by_task = {name: _train_examples(task, tokenizer, process_index, process_count)
             for name, task in tasks.items()}
  if len(by_task) == 1:
    examples = next(iter(by_task.values()))
  else:
    examples = grain.IterDataset.mix(by_task, {name: float(task.data.rate)
                                               for name, task in tasks.items()})
  return iter(examples.batch(batch_size, drop_remainder=True))


def _host_rows(examples: list[dict[str, np.ndarray]], global_size: int, rows: slice,
               pad_id: int) -> dict[str, np.ndarray]:
  """Pads a short global batch with empty rows (mask 0) and stacks this host's rows."""
  blank = {k: np.zeros_like(v) for k, v in examples[0].items()}
  blank['inputs'][:] = blank['targets'][:] = pad_id
  examples = (examples + [blank] * (global_size - len(examples)))[rows]
  return {k: np.stack([e[k] for e in examples]) for k in blank}


def make_eval_iterator(config: ml_collections.ConfigDict, tokenizer, split: str | None = None,
                       process_index: int | None = None,
                       process_count: int | None = None) -> grain.IterDataset:
  """The first train.eval_batches batches of `split` (default data.eval_split), in
  order: finite, the same every time. For one task of a mixture, give its config.
  In the streams layout: every document of the split (the first train.eval_documents
  if > 0) read whole, as streams.eval_batches lays them out.

  Every host packs the same global batches and takes its own rows, so the
  global batches do not depend on the number of processes. A short split ends
  with padding (mask 0) in its last chunk and rows.
  """
  process_index, process_count = _processes(process_index, process_count)
  batch_size = _host_batch_size(config, process_count)
  split = split or config.data.eval_split
  source = builders.split_source(_prepare(config), split)
  if not len(source):
    raise DataError(f'the {split!r} split has no records')
  rows = slice(process_index * batch_size, (process_index + 1) * batch_size)
  if config.data.layout == 'streams':
    count = min(config.train.eval_documents or len(source), len(source))
    docs = [_stream_document(source[index], config, tokenizer, 'answers')
            for index in range(count)]
    return streams.eval_batches(docs, config.train.batch_size, rows, _seq_len(config),
                                tokenizer.pad_id)
  examples = _examples(grain.MapDataset.source(source), config, tokenizer)
  batch_fn = functools.partial(_host_rows, global_size=config.train.batch_size, rows=rows,
                               pad_id=tokenizer.pad_id)
  batches = examples.batch(config.train.batch_size, drop_remainder=False, batch_fn=batch_fn)
  return grain.experimental.LimitIterDataset(batches, count=config.train.eval_batches)
