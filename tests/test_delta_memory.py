"""The delta-rule memory: both forms of the write agree (values and gradients), the rule
binds keys to values, and every knob of model.memory.delta builds a causal model."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import VOCAB, forward, full_log_probs, init_params, tiny_model
from memgpt_jax import losses
from memgpt_jax.errors import ConfigError
from memgpt_jax.model import delta_memory
from memgpt_jax.model.delta_memory import DeltaMemory, delta_rule_chunked, delta_rule_scan
from memgpt_jax.model.state import DeltaState


def _inputs(length=13, batch=2, heads=3, key_dim=8, value_dim=5, seed=0):
  keys = jax.random.split(jax.random.key(seed), 5)
  return dict(
      matrix=jax.random.normal(keys[0], (batch, heads, key_dim, value_dim)),
      keys=delta_memory.l2_normalize(jax.random.normal(keys[1], (batch, length, heads,
                                                                 key_dim))),
      values=jax.random.normal(keys[2], (batch, length, heads, value_dim)),
      beta=jax.nn.sigmoid(jax.random.normal(keys[3], (batch, length, heads))),
      log_decay=jax.nn.log_sigmoid(3.0 + jax.random.normal(keys[4], (batch, length, heads))))


@pytest.mark.parametrize('length', [1, 5, 16, 40, 64])
def test_the_unit_lower_inverse_inverts(length):
  """The blockwise doubling gives (I + L)^{-1} for any length, a power of two or not."""
  keys = delta_memory.l2_normalize(jax.random.normal(jax.random.key(length), (3, length, 8)))
  lower = np.tril(np.einsum('btk,bik->bti', keys, keys), -1)  # as a chunk's, beta = 1
  np.testing.assert_allclose(
      delta_memory._unit_lower_inverse(jnp.asarray(lower)),
      np.linalg.inv(np.eye(length) + lower.astype(np.float64)), atol=1e-4)


@pytest.mark.parametrize('batched_solve', [False, True])
@pytest.mark.parametrize('decay', [False, True])
@pytest.mark.parametrize('chunk_size', [1, 4, 13, 64])
def test_chunked_form_equals_the_token_by_token_scan(decay, chunk_size, batched_solve):
  inputs = _inputs()
  if not decay:
    inputs['log_decay'] = None
  expected = delta_rule_scan(**inputs)
  np.testing.assert_allclose(
      delta_rule_chunked(**inputs, chunk_size=chunk_size, batched_solve=batched_solve),
      expected, atol=2e-5)


@pytest.mark.parametrize('batched_solve', [False, True])
@pytest.mark.parametrize('decay', [False, True])
def test_chunked_form_has_the_gradients_of_the_scan(decay, batched_solve):
  """The chunked solve has a hand-written backward pass: it must match autodiff of
  the scan for every input."""
  inputs = _inputs(length=11)
  if not decay:
    del inputs['log_decay']
  weights = jax.random.normal(jax.random.key(9), inputs['matrix'].shape)
  loss = lambda rule: lambda args: jnp.sum(weights * jnp.tanh(rule(**args)))
  expected = jax.grad(loss(delta_rule_scan))(inputs)
  actual = jax.grad(loss(lambda **a: delta_rule_chunked(
      **a, chunk_size=4, batched_solve=batched_solve)))(inputs)
  for name in inputs:
    np.testing.assert_allclose(actual[name], expected[name], atol=1e-4, err_msg=name)


def test_the_rule_binds_each_key_to_its_value():
  """beta = 1 and orthonormal keys: every pair reads back exactly, and writing a pair
  again changes nothing (the delta rule replaces, it does not add)."""
  key_dim, value_dim = 6, 3
  keys = jnp.eye(key_dim)[None, :4, None, :]  # [1, T=4, H=1, d_k]
  values = jax.random.normal(jax.random.key(0), (1, 4, 1, value_dim))
  beta = jnp.ones((1, 4, 1))
  start = jax.random.normal(jax.random.key(1), (1, 1, key_dim, value_dim))
  written = delta_rule_scan(start, keys, values, beta)
  np.testing.assert_allclose(jnp.einsum('bthk,bhkv->bthv', keys, written), values, atol=1e-6)
  again = delta_rule_scan(written, keys, values, beta)
  np.testing.assert_allclose(again, written, atol=1e-6)
  # A key the pairs never used keeps what the memory held under it.
  unused = jnp.eye(key_dim)[5]
  np.testing.assert_allclose(unused @ written[0, 0], unused @ start[0, 0], atol=1e-6)


def test_the_key_of_a_segments_first_token_sees_the_previous_segments_last():
  """key_shift: token 0's key reads x_{-1} (carried in the state) when it continues the
  document, and nothing when a new document starts there."""
  _, cfg = tiny_model(**{'pointer.enabled': False})
  module = DeltaMemory(cfg)
  inputs = jax.random.normal(jax.random.key(0), (1, cfg.segment_len, cfg.d_model))
  state = DeltaState(matrix=jnp.zeros((1, cfg.num_heads, cfg.delta.key_dim,
                                       cfg.delta.value_dim)),
                     last_input=jax.random.normal(jax.random.key(1), (1, cfg.d_model)))
  written = jnp.ones((1, cfg.segment_len), bool)
  continues = jnp.ones((1,), bool)
  args = lambda follows_first, last: (
      state.replace(last_input=last), inputs, written, continues,
      jnp.ones((1, cfg.segment_len), bool).at[0, 0].set(follows_first), None)
  params = nn.unbox(jax.jit(module.init)(jax.random.key(2), *args(True, state.last_input)))
  apply = jax.jit(module.apply)  # compiled once, not run op by op
  matrix = lambda *a: apply(params, *args(*a))[0].matrix
  other = state.last_input + 1.0
  assert float(jnp.abs(matrix(True, state.last_input) - matrix(True, other)).max()) > 1e-4
  np.testing.assert_array_equal(matrix(False, state.last_input), matrix(False, other))
  new, _ = apply(params, *args(True, other))
  np.testing.assert_allclose(new.last_input, inputs[:, -1])


def test_memory_starts_as_a_minority_of_the_read():
  model, cfg = tiny_model()
  params = init_params(model)['params']
  gate_bias = params['blocks_0']['attention']['memory_read']['gate_bias']
  np.testing.assert_allclose(gate_bias, cfg.delta.read_gate_bias_init)
  assert jax.nn.sigmoid(cfg.delta.read_gate_bias_init) < 0.2


# Every knob of model.memory.delta away from its default, in three models.
@pytest.mark.parametrize('knobs', [
    {'memory.delta.key_shift': False, 'memory.delta.feature_map': 'elu_plus_one',
     'memory.delta.write_strength': 'fixed', 'memory.delta.read_gate': 'head'},
    {'memory.delta.feature_map': 'identity', 'memory.delta.write_strength': 'pointer',
     'memory.delta.decay': 'learned', 'memory.delta.read_gate': 'none',
     'memory.delta.key_dim': 12, 'memory.delta.value_dim': 8},
    {'memory.delta.write_form': 'scan', 'memory.delta.chunk_size': 5,
     'memory.delta.write_strength': 'sparse'},
])
def test_every_delta_knob_builds_a_causal_model_that_carries_memory(knobs):
  model, cfg = tiny_model(**{'pointer.cache_len': 0, **knobs})
  params = init_params(model)
  tokens = jax.random.randint(jax.random.key(3), (2, cfg.seq_len), 0, VOCAB)
  changed_at = 2  # in the first segment
  edited = tokens.at[:, changed_at].set((tokens[:, changed_at] + 1) % VOCAB)
  before, after = (full_log_probs(model, params, t) for t in (tokens, edited))
  np.testing.assert_allclose(before[:, :changed_at], after[:, :changed_at], atol=1e-6)
  # Only the memory carries the edit into the last segment (no pointer cache).
  last = slice(2 * cfg.segment_len, None)
  assert float(jnp.abs(before[:, last] - after[:, last]).max()) > 1e-6


def test_a_scaled_read_adds_nothing_until_its_scale_grows():
  """read_gate='scaled': the read enters times a per-head scale that starts at 0, so at
  initialisation nothing an earlier segment wrote reaches a later one; with a scale,
  it does (the knob test above, for this gate)."""
  model, cfg = tiny_model(**{'pointer.cache_len': 0, 'memory.delta.read_gate': 'scaled'})
  params = init_params(model)
  tokens = jax.random.randint(jax.random.key(5), (2, cfg.seq_len), 0, VOCAB)
  edited = tokens.at[:, 2].set((tokens[:, 2] + 1) % VOCAB)
  last = slice(2 * cfg.segment_len, None)
  difference = lambda params: float(jnp.abs(
      full_log_probs(model, params, tokens)[:, last]
      - full_log_probs(model, params, edited)[:, last]).max())
  assert difference(params) == 0.0
  scaled = jax.tree_util.tree_map_with_path(
      lambda path, x: x + 0.5 if path[-1].key == 'read_scale' else x, params)
  assert difference(scaled) > 1e-6


def test_a_sparse_write_strength_priced_out_writes_nothing_and_the_loss_pays_for_beta():
  model, cfg = tiny_model(**{'pointer.cache_len': 0, 'memory.delta.write_strength': 'sparse'})
  params = init_params(model)
  tokens = jax.random.randint(jax.random.key(4), (2, cfg.seq_len), 0, VOCAB)
  edited = tokens.at[:, 2].set((tokens[:, 2] + 1) % VOCAB)
  batch = {'targets': tokens, 'mask': jnp.ones(tokens.shape)}
  output = forward(model, params, tokens)
  assert 0.0 < float(output.write_strength.mean()) < 1.0  # [B, K, T]
  free, metrics = losses.train_loss(output, batch, z_loss=0.0)
  charged, _ = losses.train_loss(output, batch, z_loss=0.0, write_cost=0.5)
  np.testing.assert_allclose(charged - free, 0.5 * metrics['write_strength'], rtol=1e-6)
  # Every beta pushed below zero: the memory stays empty, so nothing crosses segments.
  closed = jax.tree_util.tree_map_with_path(
      lambda path, x: x - 100.0 if 'strength' in jax.tree_util.keystr(path)
      and 'bias' in jax.tree_util.keystr(path) else x, params)
  assert float(forward(model, closed, tokens).write_strength.max()) == 0.0
  last = slice(2 * cfg.segment_len, None)
  np.testing.assert_array_equal(full_log_probs(model, closed, tokens)[:, last],
                                full_log_probs(model, closed, edited)[:, last])


@pytest.mark.parametrize('priced', [False, True])
def test_the_write_cost_reaches_full_writes_only_when_priced(priced):
  """Every beta clipped at 1: the cost has no gradient, unless price_full_writes; the
  model computes the same either way."""
  model, cfg = tiny_model(**{'pointer.cache_len': 0, 'memory.delta.write_strength': 'sparse',
                             'memory.delta.price_full_writes': priced})
  plain, _ = tiny_model(**{'pointer.cache_len': 0, 'memory.delta.write_strength': 'sparse'})
  is_bias = lambda path: 'strength' in jax.tree_util.keystr(path) and 'bias' in (
      jax.tree_util.keystr(path))
  params = jax.tree_util.tree_map_with_path(
      lambda path, x: x + 100.0 if is_bias(path) else x, init_params(model))
  tokens = jax.random.randint(jax.random.key(5), (2, cfg.seq_len), 0, VOCAB)
  mean_strength = lambda p: forward(model, p, tokens).write_strength.mean()
  assert float(mean_strength(params)) == 1.0
  np.testing.assert_array_equal(full_log_probs(model, params, tokens),
                                full_log_probs(plain, params, tokens))
  gradients = jax.grad(mean_strength)(params)
  bias_gradients = [g for path, g in jax.tree_util.tree_leaves_with_path(gradients)
                    if is_bias(path)]
  assert bias_gradients
  largest = max(float(jnp.abs(g).max()) for g in bias_gradients)
  assert (largest > 0.0) == priced


def test_pricing_full_writes_needs_sparse_writes():
  with pytest.raises(ConfigError, match='price_full_writes'):
    tiny_model(**{'memory.delta.price_full_writes': True})
