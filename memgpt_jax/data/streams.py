"""The streams layout (data.layout='streams'): row b of a batch continues row b of the
batch before it, token for token, through one whole document after another.

Training: each host's B_host rows are B_host streams; stream s reads every B_host-th
document of the host's shard, shuffled anew every epoch and repeated. The model's
recurrent state is carried from batch to batch (training/steps.py), so its memory
spans whole documents, not one row. Within a stream each document is ended by eos and
has an id of its own, the running count of the stream's documents: the same in every
row it spans, so memory, pointer cache and attention start afresh exactly at a
document's first token (model/transformer.py compares ids).

Evaluation reads whole documents from their first token: the split's documents are
dealt out to the B rows of the global batch (longest first, each to the row with the
fewest tokens so far), each row reads its documents in order, and a row that has run
out is padding (mask 0) until every row has. Each target carries its position in its
document ('positions'), for bits per byte against position.

Batches have the fields of the packed layout (memgpt_jax/data/pipeline.py), plus
  positions  int32 [B_host, N]  the target token's index in its document
"""

from typing import Any

import grain
import numpy as np

# Per-token fields of a document (pipeline._FIELDS) and of a stream's row.
_DOC_FIELDS = {'tokens': np.int32, 'prefix': np.bool_, 'loss': np.bool_}
_ROW_FIELDS = {**_DOC_FIELDS, 'docs': np.int32, 'positions': np.int32}
# Documents read ahead by each stream's reader thread: a stream takes one every few steps.
_PREFETCH_DOCS = 2


def _padding_row(length: int, pad_id: int) -> dict[str, np.ndarray]:
  row = {name: np.zeros(length, dtype) for name, dtype in _ROW_FIELDS.items()}
  row['tokens'][:] = pad_id
  return row


class _StreamIterator(grain.DatasetIterator):
  """One stream of documents cut into rows of `length` + 1 tokens: the first token of
  a row is the last of the row before, so that the rows' inputs (all but the last
  token) tile the stream and every input has its next token as target.

  The first row starts with `lead` padding tokens (trained on by no one).
  A finite parent ends the stream: its last row is padded, then StopIteration.
  The state is plain ints (a JSON round trip keeps it exact): the parent's state
  before the current document, the offset in it, the documents begun, and the
  previous row's last token.
  """

  def __init__(self, parent: grain.DatasetIterator, length: int, pad_id: int,
               lead: int = 0):
    super().__init__(parent)
    self._length = length
    self._pad_id = pad_id
    self._lead = lead
    self._doc_state = parent.get_state()
    self._doc = None
    self._offset = 0
    self._count = 0  # documents begun: the current one's id
    self._last = None  # {field: value} of the previous row's last token

  def _doc_len(self) -> int:
    return 0 if self._doc is None else len(self._doc['tokens'])

  def __next__(self) -> dict[str, np.ndarray]:
    row = _padding_row(self._length + 1, self._pad_id)
    filled = self._lead
    if self._last is not None:
      for name, value in self._last.items():
        row[name][0] = value
      filled = 1
    carried = filled
    while filled < self._length + 1:
      if self._offset == self._doc_len():
        doc_state = self._parent.get_state()
        try:
          doc = next(self._parent)
        except StopIteration:
          if filled > carried:
            break  # the stream's last row: the rest stays padding
          raise
        self._doc_state, self._doc, self._offset = doc_state, doc, 0
        self._count += 1
      n = min(self._length + 1 - filled, self._doc_len() - self._offset)
      for name in _DOC_FIELDS:
        row[name][filled:filled + n] = self._doc[name][self._offset:self._offset + n]
      row['docs'][filled:filled + n] = self._count
      row['positions'][filled:filled + n] = self._offset + np.arange(n)
      filled += n
      self._offset += n
    self._last = {name: row[name][-1].item() for name in _ROW_FIELDS}
    return row

  def get_state(self) -> dict[str, Any]:
    return {'doc': self._doc_state, 'offset': self._offset, 'count': self._count,
            'last': self._last}

  def set_state(self, state: dict[str, Any]) -> None:
    self._parent.set_state(state['doc'])
    self._doc_state = state['doc']
    self._doc = next(self._parent) if state['offset'] else None
    self._offset, self._count, self._last = state['offset'], state['count'], state['last']


def _row_example(row: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """A row of N + 1 tokens -> the model's N inputs, their targets, and the targets'
  positions in their documents (the first token of a document is nobody's target)."""
  docs = row['docs']
  trained = row['loss'][1:] & (docs[1:] == docs[:-1]) & (docs[1:] > 0)
  return {'inputs': row['tokens'][:-1], 'targets': row['tokens'][1:],
          'mask': trained.astype(np.float32), 'doc_ids': docs[:-1],
          'prefix': row['prefix'][:-1], 'positions': row['positions'][1:]}


class _SideBySideIterator(grain.DatasetIterator):
  """Streams side by side: each batch takes the next row of every stream. With
  `num_batches`, exactly that many batches: a stream that has ended gives padding rows."""

  def __init__(self, streams: list[_StreamIterator], length: int, pad_id: int,
               num_batches: int | None):
    super().__init__(streams)
    self._blank = _row_example(_padding_row(length + 1, pad_id))
    self._num_batches = num_batches
    self._batches = 0
    self._ended = [False] * len(streams)

  def _next_row(self, index: int) -> dict[str, np.ndarray] | None:
    if not self._ended[index]:
      try:
        return _row_example(next(self._parents[index]))
      except StopIteration:
        if self._num_batches is None:
          raise
        self._ended[index] = True
    return None

  def __next__(self) -> dict[str, np.ndarray]:
    if self._batches == self._num_batches:
      raise StopIteration
    self._batches += 1
    rows = [self._next_row(index) for index in range(len(self._parents))]
    return {k: np.stack([blank if row is None else row[k] for row in rows])
            for k, blank in self._blank.items()}

  def get_state(self) -> dict[str, Any]:
    return {'streams': [stream.get_state() for stream in self._parents],
            'batches': self._batches, 'ended': list(self._ended)}

  def set_state(self, state: dict[str, Any]) -> None:
    for stream, stream_state in zip(self._parents, state['streams']):
      stream.set_state(stream_state)
    self._batches, self._ended = state['batches'], list(state['ended'])


class _SideBySide(grain.IterDataset):

  def __init__(self, streams: list[grain.IterDataset], length: int, pad_id: int,
               num_batches: int | None, leads: list[int] | None = None):
    super().__init__(streams)
    self._length, self._pad_id, self._num_batches = length, pad_id, num_batches
    self._leads = leads or [0] * len(streams)  # padding before each stream's first row

  def __iter__(self) -> _SideBySideIterator:
    return _SideBySideIterator(
        [_StreamIterator(parent.__iter__(), self._length, self._pad_id, lead)
         for parent, lead in zip(self._parents, self._leads)],
        self._length, self._pad_id, self._num_batches)


def train_batches(docs: grain.MapDataset, num_streams: int, length: int, pad_id: int,
                  read_threads: int) -> grain.IterDataset:
  """Endless batches of `num_streams` rows of `length` tokens from `docs` (this host's
  shuffled, repeated, tokenized documents): stream s reads docs[s::num_streams], after
  s / num_streams of a row of padding. Without that lead, documents of one length (a
  synthetic task's) keep every stream at the same place in its document: each batch
  is one part of the task (a third of the facts task's held no question at all)."""
  read = grain.ReadOptions(num_threads=min(read_threads, 1), prefetch_buffer_size=_PREFETCH_DOCS)
  streams = [docs[index::num_streams].to_iter_dataset(read) for index in range(num_streams)]
  leads = [index * length // num_streams for index in range(num_streams)]
  return _SideBySide(streams, length, pad_id, num_batches=None, leads=leads)


def deal(lengths: list[int], num_rows: int) -> list[list[int]]:
  """Document indices per row: longest first, each to the row with the fewest tokens so
  far (ties: the lowest row); each row's documents in the order of the split."""
  rows, totals = [[] for _ in range(num_rows)], [0] * num_rows
  for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
    row = min(range(num_rows), key=lambda r: (totals[r], r))
    rows[row].append(index)
    totals[row] += lengths[index]
  return [sorted(row) for row in rows]


def eval_batches(docs: list[dict[str, np.ndarray]], num_rows: int, rows: slice,
                 length: int, pad_id: int) -> grain.IterDataset:
  """The batches that read every one of the tokenized `docs` whole, dealt out to
  `num_rows` global rows (deal); this host's `rows` of each. Every host gives as many
  batches: as many as the longest row needs."""
  lengths = [len(doc['tokens']) for doc in docs]
  dealt = deal(lengths, num_rows)
  # A row of L tokens has L - 1 targets, `length` to a batch.
  num_batches = max(-(-(sum(lengths[i] for i in row) - 1) // length) for row in dealt)
  streams = [grain.MapDataset.source([docs[i] for i in row]).to_iter_dataset()
             for row in dealt[rows]]
  return _SideBySide(streams, length, pad_id, num_batches=max(num_batches, 0))
