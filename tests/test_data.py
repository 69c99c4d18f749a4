"""Data pipeline: tokenizer, TFDS builders (array_record, no TensorFlow), Grain iterators."""

import json
import os
import pathlib
import string
import sys

import ml_collections
import numpy as np
import pytest

from conftest import load_config
from memgpt_jax.data import builders
from memgpt_jax.data import pipeline
from memgpt_jax.data import records
from memgpt_jax.data.errors import DataError
from memgpt_jax.data.tokenizer import ByteTokenizer, make_tokenizer

TOK = ByteTokenizer()
N = 16  # segment_len 8 x num_segments 2
UNICODE = 'héllo wörld — 日本語 🎉 done'




def _config(tmp_path, **data) -> ml_collections.ConfigDict:
  config = load_config('default')
  config.data.tfds_data_dir = str(tmp_path / 'tfds')
  config.data.update(data)
  config.model.segment_len = 8
  config.model.num_segments = 2
  config.train.batch_size = 4
  config.train.eval_batches = 3
  return config


def _write_docs(directory: pathlib.Path, count: int) -> list[str]:
  """Writes `count` small distinct documents (one per file); returns their texts."""
  directory.mkdir(parents=True, exist_ok=True)
  texts = [f'doc{i:03d} ' + 'é' * (i % 3) + 'x' * (i % 7) + '\n' for i in range(count)]
  for i, text in enumerate(texts):
    (directory / f'{i:03d}.txt').write_text(text, encoding='utf-8')
  return texts


def _records(builder, split: str) -> list[tuple[str, str]]:
  source = builders.split_source(builder, split)
  return [(source[i]['path'].decode(), source[i]['text'].decode()) for i in range(len(source))]


def _stream_docs(batches) -> list[str]:
  """Decodes one host's packed token stream and splits it into documents at eos."""
  ids = np.concatenate([
      np.concatenate([row, targets[-1:]])
      for b in batches for row, targets in zip(b['inputs'], b['targets'])])
  docs = []
  for piece in np.split(ids, np.flatnonzero(ids == TOK.eos_id) + 1)[:-1]:
    docs.append(TOK.decode(piece))
  return docs


# Tokenizer.

@pytest.mark.parametrize('text', ['def f(x):\n  return x + 1\n', UNICODE, ''])
def test_tokenizer_round_trip(text):
  ids = TOK.encode(text)
  assert ids.dtype == np.int32
  assert len(ids) == len(text.encode('utf-8')) and np.all(ids < 256)
  assert TOK.decode(ids) == text
  with_specials = np.concatenate([[TOK.eos_id], ids, [TOK.pad_id, TOK.eos_id]])
  assert TOK.decode(with_specials) == text
  assert TOK.num_bytes(with_specials) == len(text.encode('utf-8'))


def test_stream_decoder_emits_whole_characters():
  decoder = TOK.decoder()
  pieces = [decoder.push(i) for i in TOK.encode(UNICODE)]
  assert ''.join(pieces) + decoder.finish() == UNICODE
  assert '\ufffd' not in ''.join(pieces)
  assert pieces[-9:-5] == ['', '', '', '🎉']  # 4 bytes, printed once complete.
  rng = np.random.default_rng(0)
  for _ in range(200):  # Any ids, invalid UTF-8 included: streaming == decode.
    ids = rng.integers(0, TOK.vocab_size, size=rng.integers(0, 12))
    decoder = TOK.decoder()
    assert ''.join(decoder.push(i) for i in ids) + decoder.finish() == TOK.decode(ids)


def test_make_tokenizer():
  config = load_config('default')
  assert make_tokenizer(config.data).vocab_size == 258
  config.data.tokenizer = 'wordpiece'
  with pytest.raises(DataError, match="unknown data.tokenizer 'wordpiece'"):
    make_tokenizer(config.data)


# The stdlib builder.

def _fake_stdlib(root: pathlib.Path, extra: str = '') -> set[str]:
  """Writes a small fake stdlib; returns the relative paths the corpus must hold."""
  kept = {f'mod{i:03d}.py' for i in range(100)} | {'pkg/__init__.py', 'pkg/sub/deep.py'}
  for relpath in kept:
    (root / relpath).parent.mkdir(parents=True, exist_ok=True)
    (root / relpath).write_text(f'# {relpath}{extra}\nx = "é"\n', encoding='utf-8')
  for relpath in ['site-packages/numpy/core.py', 'dist-packages/foo.py', 'test/test_os.py',
                  'pkg/tests/test_sub.py', 'idlelib/idle_test/t.py', 'empty.py',
                  'config-3.11-x86_64-linux-gnu/python-config.py', 'README.txt']:
    (root / relpath).parent.mkdir(parents=True, exist_ok=True)
    (root / relpath).write_text('' if relpath == 'empty.py' else 'excluded = 1\n')
  (root / 'latin1.py').write_bytes(b'# caf\xe9\n')  # Not UTF-8: skipped.
  return kept


def _build_stdlib(root: pathlib.Path, data_dir: pathlib.Path):
  builder = builders.PyStdlib(config=builders.stdlib_config(str(root)), data_dir=str(data_dir),
                              file_format='array_record')
  builder.download_and_prepare()
  return builder


def test_stdlib_builder_keeps_library_files_split_by_path(tmp_path):
  expected = _fake_stdlib(tmp_path / 'lib')
  builder = _build_stdlib(tmp_path / 'lib', tmp_path / 'tfds')
  assert set(builder.info.splits) == {'train', 'validation', 'test'}
  seen = set()
  for split in builder.info.splits:
    records = _records(builder, split)
    paths = [path for path, _ in records]
    assert paths == sorted(paths)
    for path, text in records:
      assert builders.stdlib_split(path) == split
      assert text == (tmp_path / 'lib' / path).read_text(encoding='utf-8')
    seen.update(paths)
  assert seen == expected


def test_stdlib_splits_are_deterministic_and_depend_only_on_the_path(tmp_path):
  common = _fake_stdlib(tmp_path / 'a')
  first = _build_stdlib(tmp_path / 'a', tmp_path / 'tfds1')
  again = _build_stdlib(tmp_path / 'a', tmp_path / 'tfds2')
  other_root = tmp_path / 'elsewhere' / 'b'  # Other place, other contents, more files.
  _fake_stdlib(other_root, extra=' changed')
  for i in range(30):
    (other_root / f'new{i}.py').write_text('y = 2\n')
  other = _build_stdlib(other_root, tmp_path / 'tfds3')
  for split in ('train', 'validation', 'test'):
    assert _records(first, split) == _records(again, split)
    paths = {path for path, _ in _records(first, split)}
    assert paths == {path for path, _ in _records(other, split)} & common


def test_real_stdlib_corpus_prepares_without_tensorflow(tmp_path):
  config = _config(tmp_path)
  builder = builders.prepare(config.data)
  splits = builder.info.splits
  assert splits['train'].num_examples > 10 * splits['validation'].num_examples > 0
  assert splits['test'].num_examples > 0
  records = _records(builder, 'validation')
  assert all(builders.stdlib_split(path) == 'validation' for path, _ in records)
  assert not any('site-packages' in path or path.startswith('test/') for path, _ in records)
  assert builders.prepare(config.data).info.splits['train'].num_examples == (
      splits['train'].num_examples)  # Prepared again: reused.
  assert 'tensorflow' not in sys.modules


# The text-files builder.

def test_text_validation_is_the_last_fraction_by_position(tmp_path):
  texts = {'b.txt': 'bbbbbbbbbb' * 3, 'a.txt': 'aaaaaaaaaa' * 4, 'c.txt': UNICODE * 2}
  for name, text in texts.items():
    (tmp_path / name).write_text(text, encoding='utf-8')
  whole = (texts['a.txt'] + texts['b.txt'] + texts['c.txt']).encode('utf-8')
  # Unsorted patterns and a repeated file still give the sorted set of files.
  paths = f'{tmp_path}/c.txt, {tmp_path}/[ab].txt,{tmp_path}/a.txt'
  config = _config(tmp_path, source='text', paths=paths, validation_fraction=0.3)
  builder = builders.prepare(config.data)
  train = ''.join(text for _, text in _records(builder, 'train'))
  validation = ''.join(text for _, text in _records(builder, 'validation'))
  assert train + validation == whole.decode('utf-8')
  cut = len(train.encode('utf-8'))
  assert abs(cut - 0.7 * len(whole)) <= 4  # At most one character past the exact cut.
  assert len(texts['a.txt']) + len(texts['b.txt']) < cut  # The cut splits c.txt in two.
  assert [os.path.basename(p) for p, _ in _records(builder, 'validation')] == ['c.txt']
  assert 'test' not in builder.info.splits


def test_text_config_changes_with_the_files(tmp_path):
  path = tmp_path / 'notes.txt'
  path.write_text('first version\n')
  config = _config(tmp_path, source='text', paths=str(path), validation_fraction=0.5)
  name = builders.make_builder(config.data).builder_config.name
  assert builders.make_builder(config.data).builder_config.name == name
  path.write_text('second, longer version\n')
  assert builders.make_builder(config.data).builder_config.name != name
  builder = builders.prepare(config.data)
  texts = [text for split in ('train', 'validation') for _, text in _records(builder, split)]
  assert ''.join(texts) == 'second, longer version\n'


# Errors: one clear line each.

@pytest.mark.parametrize('data, message', [
    (dict(source='foo'), r"unknown data.source 'foo' \(choose pystdlib, pystdlib_packages or text\)"),
    (dict(source='text', paths='{tmp}/missing/*.txt'),
     r"data.paths '.*missing/\*.txt' matches no file"),
    (dict(source='text', paths='{tmp}/empty*.txt'), 'every file matched by .* is empty'),
    (dict(source='text', paths=''), 'data.paths is empty'),
    (dict(source='text', paths='{tmp}/latin1.txt'), "'.*latin1.txt' is not UTF-8 text"),
    (dict(source='text', paths='{tmp}/ok.txt', validation_fraction=1.0),
     r'data.validation_fraction 1.0 is not in \[0, 1\)'),
    (dict(source='text', paths='{tmp}/ok.txt', shuffle_window_tokens=-1),
     r'data.shuffle_window_tokens -1 must be >= 0'),
])
def test_bad_data_settings_raise_one_line(tmp_path, data, message):
  (tmp_path / 'empty1.txt').write_text('')
  (tmp_path / 'empty2.txt').write_text('')
  (tmp_path / 'ok.txt').write_text('fine\n')
  (tmp_path / 'latin1.txt').write_bytes(b'caf\xe9\n')
  data = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in data.items()}
  config = _config(tmp_path, **data)
  with pytest.raises(DataError, match=message) as error:
    pipeline.make_train_iterator(config, TOK, 0, 1)
  assert '\n' not in str(error.value)


def test_pipeline_setting_errors(tmp_path):
  _write_docs(tmp_path / 'docs', 4)
  config = _config(tmp_path, source='text', paths=f'{tmp_path}/docs/*.txt',
                   validation_fraction=0.0)
  with pytest.raises(DataError, match="has no 'validation' split"):
    pipeline.make_eval_iterator(config, TOK, 'validation', 0, 1)
  with pytest.raises(DataError, match='batch_size 4 does not divide among 3 processes'):
    pipeline.make_train_iterator(config, TOK, 0, 3)
  with pytest.raises(DataError, match='too few for 8 processes'):
    config.train.batch_size = 8
    pipeline.make_train_iterator(config, TOK, 7, 8)


# The Grain pipeline.

@pytest.fixture
def docs_config(tmp_path):
  """20 small documents packed whole, in the records' order (the shuffle window off)."""
  texts = _write_docs(tmp_path / 'docs', 20)
  config = _config(tmp_path, source='text', paths=f'{tmp_path}/docs/*.txt',
                   validation_fraction=0.0, shuffle_window_tokens=0)
  return config, texts


def test_train_batches_are_packed_shifted_documents(docs_config):
  config, texts = docs_config
  it = pipeline.make_train_iterator(config, TOK, 0, 1)
  batches = [next(it) for _ in range(30)]
  for b in batches:
    assert b['inputs'].shape == b['targets'].shape == b['mask'].shape == (4, N)
    assert b['inputs'].dtype == b['targets'].dtype == np.int32
    np.testing.assert_array_equal(b['targets'][:, :-1], b['inputs'][:, 1:])
    # A new document id after every eos; no loss on the step from one document to
    # the next (nothing else is masked: training rows have no padding).
    assert np.all(b['doc_ids'][:, 0] == 1)
    np.testing.assert_array_equal(np.diff(b['doc_ids'], axis=1),
                                  b['inputs'][:, :-1] == TOK.eos_id)
    assert b['mask'].dtype == np.float32
    np.testing.assert_array_equal(b['mask'], b['inputs'] != TOK.eos_id)
    assert not b['prefix'].any()
  config.data.read_threads = 0  # Reader threads do not change the order.
  unthreaded = pipeline.make_train_iterator(config, TOK, 0, 1)
  np.testing.assert_array_equal(np.stack([next(unthreaded)['inputs'] for _ in batches]),
                                np.stack([b['inputs'] for b in batches]))
  docs = _stream_docs(batches)
  assert len(docs) > 2 * len(texts)  # Several epochs...
  first, second = docs[:20], docs[20:40]
  assert sorted(first) == sorted(second) == sorted(texts)  # ...each one holds every doc once,
  assert first != second  # in a new order.


@pytest.mark.parametrize('window_tokens', [0, 40])
def test_train_iterator_resumes_exactly_from_json_state(docs_config, window_tokens):
  config, _ = docs_config
  config.data.shuffle_window_tokens = window_tokens  # 40: about 3 documents a window.
  first_batch = next(pipeline.make_train_iterator(config, TOK, 0, 1))
  offsets, window_positions = set(), set()
  for k in [0, 1, 2, 3, 5, 13]:  # About 4 batches an epoch: several epochs deep.
    it = pipeline.make_train_iterator(config, TOK, 0, 1)
    for _ in range(k):
      next(it)
    state = json.loads(json.dumps(it.get_state()))  # As Orbax saves it.
    offsets.add(state['offset'])
    if window_tokens:
      window_positions.add(state['doc']['position'])
    expected = [next(it) for _ in range(6)]
    resumed = pipeline.make_train_iterator(config, TOK, 0, 1)
    resumed.set_state(state)
    for want, got in zip(expected, [next(resumed) for _ in range(6)]):
      for key in want:
        np.testing.assert_array_equal(got[key], want[key])
    assert k == 0 or not np.array_equal(expected[0]['inputs'], first_batch['inputs'])
  assert 0 in offsets and len(offsets) > 2  # Resumed at a document start and inside documents.
  if window_tokens:
    assert len(window_positions - {0}) > 2  # and in the middle of windows.


def test_hosts_read_disjoint_shards_that_cover_the_data(docs_config):
  config, texts = docs_config
  shards = []
  for process_index in range(2):
    it = pipeline.make_train_iterator(config, TOK, process_index, 2)
    batches = [next(it) for _ in range(20)]
    assert batches[0]['inputs'].shape == (2, N)
    shards.append(set(_stream_docs(batches)))
  assert not shards[0] & shards[1]
  assert shards[0] | shards[1] == set(texts)


def test_eval_batches_are_fixed_padded_and_process_independent(tmp_path):
  (tmp_path / 'a.txt').write_text('t' * 200)
  (tmp_path / 'b.txt').write_text('v' * 20)  # The validation split: 20 bytes + eos.
  config = _config(tmp_path, source='text', paths=f'{tmp_path}/*.txt',
                   validation_fraction=20 / 220)
  batches = list(pipeline.make_eval_iterator(config, TOK, 'validation', 0, 1))
  assert batches[0]['mask'].sum() == 16 + 3  # Chunks of 17 tokens: 17 real, then 4 real.
  assert len(batches) == 1 and batches[0]['inputs'].shape == (4, N)
  assert np.all(batches[0]['targets'][batches[0]['mask'] == 0] == TOK.pad_id)
  assert np.all(batches[0]['inputs'][2:] == TOK.pad_id)
  assert _stream_docs(batches) == ['v' * 20]

  train = pipeline.make_eval_iterator(config, TOK, 'train', 0, 1)
  first, again = list(train), list(train)
  assert len(first) == 3  # train.eval_batches
  hosts = [list(pipeline.make_eval_iterator(config, TOK, 'train', p, 2)) for p in range(2)]
  config.data.shuffle_window_tokens = 0  # Evaluation packs whole documents in order anyway.
  unshuffled = list(pipeline.make_eval_iterator(config, TOK, 'train', 0, 1))
  for b, b_again, b_unshuffled, b0, b1 in zip(first, again, unshuffled, *hosts):
    for key in b:
      np.testing.assert_array_equal(b[key], b_again[key])
      np.testing.assert_array_equal(b[key], b_unshuffled[key])
      np.testing.assert_array_equal(b[key], np.concatenate([b0[key], b1[key]]))


# Training rows mix the corpus: pieces of documents, cut and ordered anew every window.

ROW = N + 1  # tokens of a packed row: its inputs and the last target


def _row_parts(batches) -> list[list[np.ndarray]]:
  """Each training row's N + 1 tokens, split where a new document or piece starts."""
  rows = []
  for b in batches:
    for inputs, targets, docs, mask in zip(b['inputs'], b['targets'], b['doc_ids'], b['mask']):
      tokens = np.append(inputs, targets[-1])
      docs = np.append(docs, docs[-1] + (mask[-1] == 0))  # The last target's document.
      rows.append(np.split(tokens, np.flatnonzero(np.diff(docs)) + 1))
  return rows


def _place(text: str, part: np.ndarray) -> int | None:
  """Where the part's text is in `text`, when it occurs there exactly once."""
  piece = TOK.decode(part)
  at = text.find(piece)
  return at if piece and at == text.rfind(piece) else None


def _single_file_rows(tmp_path, batches: int) -> tuple[str, list[list[np.ndarray]]]:
  """One file of random characters (71 rows an epoch) in windows of one document."""
  rng = np.random.default_rng(0)
  text = ''.join(rng.choice(list(string.ascii_letters + string.digits + string.punctuation),
                            71 * ROW - 1))  # With its eos, one epoch fills 71 rows.
  (tmp_path / 'one.txt').write_text(text)
  config = _config(tmp_path, source='text', paths=str(tmp_path / 'one.txt'),
                   validation_fraction=0.0, shuffle_window_tokens=1)
  it = pipeline.make_train_iterator(config, TOK, 0, 1)
  return text, _row_parts([next(it) for _ in range(batches)])


def test_rows_of_a_batch_are_windows_from_all_over_a_single_file(tmp_path):
  text, rows = _single_file_rows(tmp_path, 18)
  for row in rows:
    for part in row:  # Every piece is a stretch of the file; only its end has the eos.
      assert TOK.decode(part) in text
      assert TOK.eos_id not in part[:-1]
      assert part[-1] != TOK.eos_id or text.endswith(TOK.decode(part))
  for batch in zip(*[iter(rows)] * 4):
    places = [at for row in batch for part in row if (at := _place(text, part)) is not None]
    # In file order a batch would be one stretch of 4 rows.
    assert max(places) - min(places) > 4 * ROW


def test_every_epoch_cuts_and_orders_a_single_file_anew(tmp_path):
  text, rows = _single_file_rows(tmp_path, 36)
  doc = np.append(TOK.encode(text), TOK.eos_id)
  epochs = [rows[:71], rows[71:142]]
  cuts, order = [], []
  for epoch in epochs:  # Every token of the file once per epoch,
    tokens = np.concatenate([part for row in epoch for part in row])
    np.testing.assert_array_equal(np.sort(tokens), np.sort(doc))
    cuts.append({_place(text, part) for row in epoch for part in row[1:]} - {None, 0})
    order.append(np.argsort([_place(text, max(row, key=len)) for row in epoch]))
  assert cuts[0] and cuts[1] and cuts[0] != cuts[1]  # cut at other places
  assert not np.array_equal(order[0], order[1])  # and packed in another order.


def _write_letter_docs(directory: pathlib.Path, count: int) -> list[str]:
  """`count` documents of 100 to 121 tokens, each one letter repeated; returns the letters."""
  directory.mkdir(parents=True, exist_ok=True)
  letters = string.ascii_uppercase[:count]
  for i, letter in enumerate(letters):
    (directory / f'{letter}.txt').write_text(letter * (100 + 3 * i))
  return list(letters)


def _letters(rows: list[list[np.ndarray]]) -> list[set[str]]:
  return [set(TOK.decode(np.concatenate(row))) for row in rows]


def test_rows_of_a_batch_come_from_different_documents(tmp_path):
  _write_letter_docs(tmp_path / 'docs', 8)  # Whole, a document would fill 6 to 8 rows.
  config = _config(tmp_path, source='text', paths=f'{tmp_path}/docs/*.txt',
                   validation_fraction=0.0, shuffle_window_tokens=400)
  it = pipeline.make_train_iterator(config, TOK, 0, 1)
  rows = _row_parts([next(it) for _ in range(30)])
  for row in rows:
    assert all(len(set(TOK.decode(part))) <= 1 for part in row)  # A piece is of one document.
  per_batch = [len(set.union(*batch)) for batch in zip(*[iter(_letters(rows))] * 4)]
  assert min(per_batch) >= 2 and np.mean(per_batch) >= 3


def test_hosts_shuffle_pieces_of_their_own_documents(tmp_path):
  letters = _write_letter_docs(tmp_path / 'docs', 8)
  config = _config(tmp_path, source='text', paths=f'{tmp_path}/docs/*.txt',
                   validation_fraction=0.0, shuffle_window_tokens=400)
  shards = []
  for process_index in range(2):
    it = pipeline.make_train_iterator(config, TOK, process_index, 2)
    shards.append(set.union(*_letters(_row_parts([next(it) for _ in range(40)]))))
  assert not shards[0] & shards[1]
  assert shards[0] | shards[1] == set(letters)


def test_pieces_cover_every_document_once_per_epoch(tmp_path):
  """Six documents of distinct characters; windows of 96 tokens are one epoch each."""
  chars = (string.ascii_letters + string.digits + string.punctuation)[:90]
  texts = [chars[i:i + 15] for i in range(0, 90, 15)]
  (tmp_path / 'docs').mkdir()
  for i, text in enumerate(texts):
    (tmp_path / 'docs' / f'{i}.txt').write_text(text)
  config = _config(tmp_path, source='text', paths=f'{tmp_path}/docs/*.txt',
                   validation_fraction=0.0, shuffle_window_tokens=96)
  it = pipeline.make_train_iterator(config, TOK, 0, 1)
  rows = _row_parts([next(it) for _ in range(15)])  # 60 rows of 17: 10 epochs of 96 tokens.
  stream = np.concatenate([part for row in rows for part in row])
  corpus = np.sort(np.concatenate([np.append(TOK.encode(t), TOK.eos_id) for t in texts]))
  for epoch in range(10):
    np.testing.assert_array_equal(np.sort(stream[96 * epoch:96 * (epoch + 1)]), corpus)
  cut_inside = 0
  for row in rows:
    for index, piece in enumerate(TOK.decode(part) for part in row):
      if piece:  # Not a lone eos.
        (text,) = [t for t in texts if piece in t]  # A stretch of one document.
        cut_inside += index > 0 and not text.startswith(piece)
  assert cut_inside > 10  # Pieces start inside documents, not only at their start.


def test_dialogue_turns_are_written_with_the_chat_template():
  """data.first_speaker_key: the turns alternate from the speaker it names; a value
  that is neither speaker is one line naming the feature."""
  data = load_config('default').data
  data.update(text_key='turns', first_speaker_key='who')
  record = {'turns': np.array([b'Hi.', b'Hello, how can I help?']), 'who': np.int64(1)}
  assert records.record_texts(record, data) == (
      'Assistant: Hi.\nUser: Hello, how can I help?\n',)
  data.chat.user, data.chat.end_of_turn = 'Q: ', '|'
  record['who'] = np.int64(0)
  assert records.record_texts(record, data) == ('Q: Hi.|Assistant: Hello, how can I help?|',)
  record['who'] = np.int64(2)
  with pytest.raises(DataError, match="feature 'who' is 2: data.first_speaker_key"):
    records.record_texts(record, data)
