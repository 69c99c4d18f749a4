"""Property-based tests (Hypothesis) of what reads outside input: prompt files, text
files for training, the byte tokenizer, the streams iterator's saved state. Each
property holds for every input Hypothesis draws: read exactly, or refused with one line.
Examples are drawn from a fixed seed (derandomize), so a run repeats the last one."""

import json
import pathlib
import tempfile

import grain
from hypothesis import HealthCheck, given, settings, strategies as st
import numpy as np

from conftest import load_config
from memgpt_jax import sampling
from memgpt_jax.data import pipeline, streams
from memgpt_jax.data.tokenizer import ByteTokenizer
from memgpt_jax.errors import UserError

TOK = ByteTokenizer()
CHECKED = settings(derandomize=True, database=None, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])

# File contents the way they come: random bytes, valid UTF-8 text of any script, empty
# files, one huge line, Latin-1 accents, NULs, lone carriage returns.
_TEXT = st.text(st.characters(codec='utf-8'), max_size=300)
_CONTENTS = st.one_of(
    st.binary(max_size=300), _TEXT.map(str.encode),
    st.just(b''), st.integers(10_000, 60_000).map(lambda n: b'x' * n),
    st.lists(st.sampled_from([b'caf\xe9', b'\x00', b'\r', b'ok\n', '\u00e9\n'.encode()]),
             max_size=20).map(b''.join))


def _one_line_refusal(error: UserError):
  assert str(error) and '\n' not in str(error), repr(str(error))


@CHECKED
@given(content=_CONTENTS)
def test_a_prompt_file_is_read_exactly_or_refused_in_one_line(content):
  with tempfile.TemporaryDirectory() as folder:
    path = pathlib.Path(folder) / 'prompt.txt'
    path.write_bytes(content)
    try:
      text = sampling.prompt_text(None, str(path), None)
    except UserError as error:
      _one_line_refusal(error)
      try:
        assert not content.decode('utf-8')  # refused: not UTF-8, or empty
      except UnicodeDecodeError:
        pass
    else:
      assert text == content.decode('utf-8') and text


@CHECKED
@given(text=_TEXT)
def test_the_byte_tokenizer_round_trips_any_text_whole_and_streamed(text):
  ids = TOK.encode(text)
  assert ids.dtype == np.int32 and np.all((ids >= 0) & (ids < TOK.vocab_size))
  assert TOK.decode(ids) == text
  stream = TOK.decoder()
  assert ''.join(stream.push(int(i)) for i in ids) + stream.finish() == text


@settings(CHECKED, max_examples=10)
@given(files=st.lists(_CONTENTS, min_size=1, max_size=3))
def test_any_text_files_train_or_are_refused_in_one_line(files):
  """data.source=text over files of any content: batches of the configured shape, ids
  in the vocabulary, or one line naming the problem (empty, not UTF-8, too short)."""
  with tempfile.TemporaryDirectory() as folder:
    folder = pathlib.Path(folder)
    for index, content in enumerate(files):
      (folder / f'{index}.txt').write_bytes(content)
    config = load_config('default')
    config.data.update(source='text', paths=f'{folder}/*.txt', validation_fraction=0.0)
    config.data.tfds_data_dir = str(folder / 'tfds')
    config.model.segment_len, config.model.num_segments = 8, 2
    config.train.batch_size = 2
    try:
      batches = pipeline.make_train_iterator(config, TOK, 0, 1)
      batch = next(batches)
    except UserError as error:
      _one_line_refusal(error)
      return
    assert batch['inputs'].shape == (2, 16)
    assert np.all((batch['inputs'] >= 0) & (batch['inputs'] < TOK.vocab_size))


def _docs(lengths: list[int]) -> list[dict[str, np.ndarray]]:
  starts = np.cumsum([1] + lengths[:-1])
  return [{'tokens': np.arange(start, start + length, dtype=np.int32),
           'prefix': np.zeros(length, bool), 'loss': np.ones(length, bool)}
          for start, length in zip(starts, lengths)]


@CHECKED
@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=8),
       num_streams=st.integers(1, 4), stop=st.integers(0, 12))
def test_the_streams_iterator_resumes_exactly_from_its_state_at_any_step(lengths, num_streams,
                                                                          stop):
  def batches():
    docs = grain.MapDataset.source(_docs(lengths)).repeat()  # as training reads: epochs on end
    return iter(streams.train_batches(docs, num_streams, 6, 0, read_threads=1))

  whole, parts = batches(), batches()
  for _ in range(stop):
    next(parts)
  state = json.loads(json.dumps(parts.get_state()))  # as a checkpoint keeps it
  resumed = batches()
  resumed.set_state(state)
  for _ in range(stop):
    next(whole)
  for _ in range(4):
    want, got = next(whole), next(resumed)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key], err_msg=key)
