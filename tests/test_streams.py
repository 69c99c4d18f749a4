"""The streams layout: rows that continue each other from batch to batch through whole
documents, the model's state carried with them (training and evaluation), exact resume."""

import functools
import json

import flax.linen as nn
import grain
import jax
import numpy as np
import pytest

from conftest import forward, init_params, load_config, tiny_model, tiny_train_config
from conftest import train_losses
from memgpt_jax import config_lib, losses
from memgpt_jax.data import streams
from memgpt_jax.errors import ConfigError
from memgpt_jax.model.transformer import MemGPT
from memgpt_jax.training import steps
from memgpt_jax.training.optimizer import make_optimizer, make_schedule
from memgpt_jax.training.trainer import train_and_evaluate

PAD = 0
LENGTH = 10  # tokens of a row's inputs


def documents(lengths: list[int], first: int = 1) -> list[dict[str, np.ndarray]]:
  """Documents whose tokens count up from `first` (each token says where it came from)."""
  docs, start = [], first
  for length in lengths:
    docs.append({'tokens': np.arange(start, start + length, dtype=np.int32),
                 'prefix': np.zeros(length, bool), 'loss': np.ones(length, bool)})
    start += length
  return docs


def train_iterator(docs, num_streams: int = 2):
  return iter(streams.train_batches(grain.MapDataset.source(docs).repeat(3), num_streams,
                                    LENGTH, PAD, read_threads=1))


def test_each_row_continues_the_row_before_through_whole_documents():
  docs = documents([7, 23, 4, 15, 9, 30])
  iterator = train_iterator(docs)
  batches = [next(iterator) for _ in range(6)]
  for row in range(2):
    inputs = np.concatenate([b['inputs'][row] for b in batches])
    ids = np.concatenate([b['doc_ids'][row] for b in batches])
    # Stream s reads documents s, s + 2, ... (then the next epoch) after s / 2 of a row
    # of padding (id 0): its inputs are their tokens one after another, each document
    # with the next id.
    lead = [PAD] * (row * LENGTH // 2)
    read = np.concatenate([lead] + [d['tokens'] for d in docs[row::2]] * 3)[:len(inputs)]
    np.testing.assert_array_equal(inputs, read)
    lengths = [len(lead)] + [len(d['tokens']) for d in docs[row::2]] * 3
    np.testing.assert_array_equal(ids, np.repeat(np.arange(len(lengths)),
                                                 lengths)[:len(inputs)])
    for before, after in zip(batches, batches[1:]):  # the next row starts where it ended
      assert after['inputs'][row, 0] == before['targets'][row, -1]
  for batch in batches:
    # A target is trained where it continues its input's document: a document's first
    # token is nobody's target.
    same = ((batch['doc_ids'][:, 1:] == batch['doc_ids'][:, :-1])
            & (batch['doc_ids'][:, 1:] > 0))
    np.testing.assert_array_equal(batch['mask'][:, :-1] > 0, same)
    np.testing.assert_array_equal(batch['targets'][:, :-1], batch['inputs'][:, 1:])


def test_streams_of_documents_of_one_length_are_not_in_step():
  """Each row of a batch is at another place in its document: with documents of one
  length (a synthetic task's) a batch is not one part of the task over and over."""
  iterator = train_iterator(documents([24] * 12), num_streams=4)
  for _ in range(8):
    positions = next(iterator)['positions'][:, -1]
    assert len(set(positions.tolist())) == 4, positions


def test_the_iterator_resumes_exactly_from_its_json_state():
  docs = documents([13, 5, 28, 9, 17, 3, 21])
  iterator = train_iterator(docs, num_streams=3)
  for _ in range(4):
    next(iterator)
  state = json.loads(json.dumps(iterator.get_state()))
  expected = [next(iterator) for _ in range(6)]
  resumed = train_iterator(docs, num_streams=3)
  resumed.set_state(state)
  for want in expected:
    got = next(resumed)
    assert got.keys() == want.keys()
    for key in want:
      np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_evaluation_scores_every_token_of_every_document_once():
  lengths = [31, 4, 57, 12, 2, 19]
  docs = documents(lengths)
  rows = 4
  batches = list(streams.eval_batches(docs, rows, slice(0, rows), LENGTH, PAD))
  scored = np.concatenate([b['targets'][b['mask'] > 0] for b in batches])
  # Every token but a document's first is a target, exactly once, with its position.
  want = np.concatenate([d['tokens'][1:] for d in docs])
  np.testing.assert_array_equal(np.sort(scored), np.sort(want))
  positions = np.concatenate([b['positions'][b['mask'] > 0] for b in batches])
  starts = {int(d['tokens'][0]): d for d in docs}
  for token, position in zip(scored, positions):
    first = max(s for s in starts if s <= token)
    assert position == token - first
  # As many batches as the longest row needs: the longest documents spread out first.
  assert streams.deal(lengths, rows) == [[2], [0], [5], [1, 3, 4]]  # 57, 31, 19, 18 tokens
  assert len(batches) == -(-(57 - 1) // LENGTH)
  # Each host takes its own rows of the same batches.
  half = list(streams.eval_batches(docs, rows, slice(2, 4), LENGTH, PAD))
  assert len(half) == len(batches)
  for whole, part in zip(batches, half):
    np.testing.assert_array_equal(part['inputs'], whole['inputs'][2:4])


def _stream_batches(model: MemGPT, pieces: int, seed: int = 0) -> list[dict]:
  """`pieces` consecutive batches of 2 streams: row 0 one document, row 1 two (the
  second starting inside the second batch)."""
  length = model.cfg.seq_len
  rng = np.random.default_rng(seed)
  tokens = rng.integers(1, model.cfg.vocab_size, (2, pieces * length + 1)).astype(np.int32)
  doc_ids = np.ones((2, pieces * length + 1), np.int32)
  doc_ids[1, length + length // 3:] = 2
  mask = (doc_ids[:, 1:] == doc_ids[:, :-1]).astype(np.float32)
  return [{'inputs': tokens[:, i * length:(i + 1) * length],
           'targets': tokens[:, i * length + 1:(i + 1) * length + 1],
           'mask': mask[:, i * length:(i + 1) * length],
           'doc_ids': doc_ids[:, i * length:(i + 1) * length]} for i in range(pieces)]


def _joined(batches: list[dict]) -> dict:
  return {k: np.concatenate([b[k] for b in batches], axis=1) for k in batches[0]}


def test_carrying_the_state_from_batch_to_batch_is_one_pass_over_the_stream(memgpt):
  """Three batches evaluated one after another from the state each leaves = the whole
  stream in one forward pass, where row 1's second document starts mid-batch."""
  model, params = memgpt
  batches = _stream_batches(model, 3)
  carry = model.apply(params, 2, method=MemGPT.initial_state)
  nll = 0.0
  for batch in batches:
    carry, sums = steps.eval_step(params['params'], carry, batch, model, None, 0)
    nll += float(sums['nll'])
  whole = _joined(batches)
  want = losses.eval_sums(forward(model, params, whole['inputs'], whole['doc_ids']),
                          whole['targets'], whole['mask'])['nll']
  assert np.isfinite(nll)
  np.testing.assert_allclose(nll, float(want), rtol=2e-5)
  # A fresh state for each batch instead scores something else: the state matters.
  fresh = sum(float(steps.eval_step(params['params'], None, b, model, None, 0)[1]['nll'])
              for b in batches)
  assert abs(fresh - nll) > 1e-3 * abs(nll)


def test_position_groups_split_the_sums():
  model, _ = tiny_model()
  params = init_params(model)
  batch = _stream_batches(model, 1)[0]
  batch['groups'] = (np.arange(model.cfg.seq_len)[None, :] // 7 % 3).repeat(2, 0)
  _, sums = steps.eval_step(params['params'], None, batch, model, None, 3)
  np.testing.assert_allclose(sums['group_nll'].sum(), sums['nll'], rtol=1e-5)
  np.testing.assert_allclose(sums['group_tokens'].sum(), sums['tokens'])
  for group in range(3):
    np.testing.assert_allclose(sums['group_tokens'][group],
                               batch['mask'][batch['groups'] == group].sum())


@pytest.mark.parametrize('overrides', [{}, {'pointer.enabled': False}])  # off: an empty cache
def test_the_train_step_carries_each_rows_state_to_the_next_step(overrides):
  """The new state is where the rows' forward pass ends (with the parameters the step
  started from), in one batch and in 2 micro-batches; and the micro-batches make the one
  batch's update, at the second step too (its loss reads the carried state)."""
  config = load_config('tiny')
  model, _ = tiny_model(**{'num_layers': 2, **overrides})
  optimizer = make_optimizer(config.train)
  state = nn.unbox(steps.init_train_state(model, optimizer, jax.random.PRNGKey(0), 1,
                                          carry_rows=4))
  first, second = _stream_batches(model, 2, seed=3)
  four = lambda b: {k: np.concatenate([v, v[::-1]]) for k, v in b.items()}  # 4 rows
  micro_batches = steps.StepSettings(model, optimizer, 0.0, 0.0, 0.0, 2, None)
  one_batch = steps.StepSettings(model, optimizer, 0.0, 0.0, 0.0, 1, None)
  schedule = make_schedule(config.train)
  train_step = jax.jit(steps.train_step, static_argnums=3)
  start = state
  state, _ = train_step(state, four(first), schedule, micro_batches)
  reference, _ = train_step(start, four(first), schedule, one_batch)
  want, _ = jax.jit(functools.partial(model.apply, method=MemGPT.run_segments))(
      {'params': start.params}, four(first)['inputs'], start.carry, four(first)['doc_ids'])
  for carried in (state.carry, reference.carry):
    for got, expected in zip(jax.tree.leaves(carried), jax.tree.leaves(want)):
      np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  state, metrics = train_step(state, four(second), schedule, micro_batches)
  reference, reference_metrics = train_step(reference, four(second), schedule, one_batch)
  np.testing.assert_allclose(metrics['loss'], reference_metrics['loss'], rtol=2e-5)
  for got, expected in zip(jax.tree.leaves(state.params), jax.tree.leaves(reference.params)):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('changes,message', [
    ({'data.layout': 'rows'}, "data.layout='rows' is not one of packed, streams"),
    ({'data.source': 'copy_summary'}, "data.layout='streams' is for causal-LM text"),
    ({'train.eval_position_buckets': (4096, 1024)}, 'must be increasing'),
])
def test_settings_the_streams_layout_cannot_take_are_one_line(changes, message):
  config = load_config('tiny')
  config.data.layout = 'streams'
  for key, value in changes.items():
    config_lib.set_dotted(config, key, value)
  with pytest.raises(ConfigError, match=message):
    config_lib.validate(config, 258)


@pytest.mark.parametrize('pointer', [True, False])  # off: its carried cache is empty
def test_a_streams_run_resumes_exactly(data_dir, tmp_path, pointer):
  """Stopped at step 3 and resumed = never stopped: the streams' places and the model
  state they carry are in the checkpoint."""
  def streams_config(**train):
    config = tiny_train_config(data_dir, num_steps=6, checkpoint_every=3, eval_every=6,
                               async_checkpointing=False, **train)
    config.data.layout = 'streams'
    config.model.pointer.enabled = pointer
    config.train.eval_documents = 1
    return config

  whole, parts = tmp_path / 'whole', tmp_path / 'parts'
  metrics = train_and_evaluate(streams_config(), whole)
  assert any(key.startswith('bits_per_byte/') for key in metrics)
  train_and_evaluate(streams_config(stop_at_step=3), parts)
  again = train_and_evaluate(streams_config(), parts)
  got, want = train_losses(parts), train_losses(whole)
  assert sorted(got) == sorted(want) == list(range(1, 7))
  np.testing.assert_allclose([got[s] for s in sorted(got)], [want[s] for s in sorted(want)],
                             rtol=1e-6)
  assert again['loss'] == pytest.approx(metrics['loss'], rel=1e-6)
