"""Invariants of the model's math (DESIGN 1.7): causality, the plain-GPT baseline,
the pointer mixture, memory across segments, truncated BPTT."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import (MEMORY_KINDS, VOCAB, forward, full_log_probs, init_params,
                      random_tokens, tiny_model)
from memgpt_jax import losses
from memgpt_jax.model import layers
from memgpt_jax.model.pointer import target_log_probs
from memgpt_jax.model.state import SegmentOutput


def test_causal_across_segments_with_memory_and_pointer(memgpt):
  model, params = memgpt
  tokens = random_tokens((2, model.cfg.seq_len))
  changed_at = model.cfg.segment_len + 3  # inside the second segment
  edited = tokens.at[:, changed_at].set((tokens[:, changed_at] + 1) % VOCAB)
  before = full_log_probs(model, params, tokens)
  after = full_log_probs(model, params, edited)
  np.testing.assert_allclose(before[:, :changed_at], after[:, :changed_at], atol=1e-6)
  # The edit must be visible from its own position on, also in later segments
  # (through attention, the pointer and the memory): otherwise the test proves nothing.
  diff = np.abs(np.asarray(before - after)).max(axis=(0, 2))
  assert diff[changed_at] > 1e-4
  assert diff[2 * model.cfg.segment_len:].min() > 1e-6


@pytest.mark.parametrize('memgpt', ['delta'], indirect=True)  # pointer only
def test_pointer_mixture_is_a_distribution(memgpt):
  model, params = memgpt
  tokens = random_tokens((2, model.cfg.seq_len), seed=1)
  output = forward(model, params, tokens)
  probs = jnp.exp(losses.next_token_log_probs(output))
  assert float(probs.min()) >= 0.0
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
  # The training path (log space, target only) agrees with the full distribution.
  targets = random_tokens(tokens.shape, seed=2)
  gathered = jnp.take_along_axis(jnp.log(probs), targets[..., None], -1)[..., 0]
  np.testing.assert_allclose(losses.token_log_probs(output, targets).reshape(gathered.shape),
                             gathered, atol=1e-4)
  # With no candidate (the very first position) the gate is 1; after it the pointer
  # really contributes: the gate is strictly inside (0, 1).
  gate = jnp.exp(output.log_gate)
  np.testing.assert_allclose(gate[:, 0, 0], 1.0, rtol=1e-6)
  later = gate.reshape(2, -1)[:, 1:]
  assert 0.0 < float(later.min()) and float(later.max()) < 1.0


def test_pointer_copy_mass_goes_to_successors():
  """Hand-built scores: all copy mass on the candidate whose successor is token 7."""
  vocab_logits = jnp.zeros((1, 1, 10))
  log_gate = jnp.log(jnp.array([[0.25]]))
  log_attn = jnp.log(jnp.array([[[[0.75, 1e-30]]]]))  # [B, L, heads, C]
  successors = jnp.array([[7, 3]])
  log_p7 = target_log_probs(vocab_logits, jnp.array([[7]]), log_gate, log_attn, successors)
  log_p3 = target_log_probs(vocab_logits, jnp.array([[3]]), log_gate, log_attn, successors)
  np.testing.assert_allclose(jnp.exp(log_p7), 0.25 / 10 + 0.75, rtol=1e-6)
  np.testing.assert_allclose(jnp.exp(log_p3), 0.25 / 10, rtol=1e-5)


def test_copy_share_where_the_gate_underflows():
  """Position 0: a confident pointer (g = e^-200, 0 in float32) at a target it cannot
  copy, off the mask: the share there is 0, not NaN, and the sum stays finite.
  Position 1: g = 1/4, p_vocab(y) = 1/4, copies 3/4: the share is 0.75 / 0.8125."""
  output = SegmentOutput(
      vocab_logits=jnp.zeros((1, 1, 2, 4)), log_gate=jnp.array([[[-200.0, jnp.log(0.25)]]]),
      log_attn=jnp.log(jnp.array([[[[[1.0, 0.0]], [[0.75, 0.0]]]]])),  # [B, K, T, heads, C]
      proposals=jnp.array([[[1, 3]]]))
  sums = losses.eval_sums(output, targets=jnp.array([[2, 1]]), mask=jnp.array([[0.0, 1.0]]))
  np.testing.assert_allclose(sums['copy_share'], 0.75 / (0.25 / 4 + 0.75), rtol=1e-5)


def test_pointer_is_finite_in_bfloat16():
  model, _ = tiny_model(dtype='bfloat16')
  params = init_params(model)
  tokens = random_tokens((2, model.cfg.seq_len), seed=3)
  targets = random_tokens(tokens.shape, seed=4)
  loss = lambda p: -losses.token_log_probs(model.apply(p, tokens), targets).mean()
  log_p, grads = jax.jit(jax.value_and_grad(loss))(params)
  assert log_p.dtype == jnp.float32
  assert bool(jnp.isfinite(log_p))
  assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize('memory', [*MEMORY_KINDS, None])
def test_information_crosses_segments_only_through_memory(memory):
  """Without memory (and with no pointer cache) segment 3 cannot see segment 1: a leak
  check. With memory on (either kind), it can."""
  model, cfg = tiny_model(**{'memory.enabled': memory is not None,
                             'memory.kind': memory or 'delta', 'pointer.cache_len': 0})
  params = init_params(model)
  tokens = random_tokens((2, cfg.seq_len), seed=5)
  edited = tokens.at[:, 2].set((tokens[:, 2] + 1) % VOCAB)
  last = slice(2 * cfg.segment_len, None)
  diff = jnp.abs(full_log_probs(model, params, tokens)[:, last]
                 - full_log_probs(model, params, edited)[:, last]).max()
  if memory:
    assert float(diff) > 1e-6
  else:
    assert float(diff) == 0.0


@pytest.mark.parametrize('gate', ['fixed', 'gru', 'none'])
def test_slot_memory_gates_run_and_differ(gate):
  model, cfg = tiny_model(**{'memory.kind': 'slots', 'memory.slots.gate': gate,
                             'pointer.enabled': False})
  params = init_params(model)
  tokens = random_tokens((1, cfg.seq_len), seed=6)
  output = forward(model, params, tokens)
  assert bool(jnp.isfinite(output.vocab_logits).all())
  names = set(params['params']['memories_0'])
  assert ('gate_bias' in names) == (gate == 'fixed')
  assert ('gate' in names) == (gate == 'gru')


@pytest.mark.parametrize('kind', MEMORY_KINDS)
def test_truncated_bptt_cuts_the_memory_gradient(kind):
  """Loss on the last segment, gradient on embeddings used only in the first segment:
  there through the memory with full BPTT, none with the gradient cut every segment."""
  params = None
  for bptt_segments, expect_gradient in ((0, True), (1, False)):
    model, cfg = tiny_model(**{'memory.bptt_segments': bptt_segments, 'memory.kind': kind,
                               'pointer.enabled': False, 'tie_embeddings': False})
    params = params or init_params(model)  # the same parameters: bptt changes none
    first = random_tokens((2, cfg.segment_len), seed=7, vocab=8)  # ids 0..7
    rest = 8 + random_tokens((2, cfg.seq_len - cfg.segment_len), seed=8, vocab=VOCAB - 8)
    tokens = jnp.concatenate([first, rest], axis=1)

    def last_segment_loss(p, model=model, tokens=tokens):
      output = model.apply(p, tokens)
      return -losses.token_log_probs(output, tokens)[:, -1].mean()

    grads = jax.jit(jax.grad(last_segment_loss))(params)['params']['embed']['embedding']
    norm = float(jnp.abs(grads[:8]).max())
    assert (norm > 0.0) == expect_gradient, bptt_segments


@pytest.mark.parametrize('position', ['rope', 'sinusoidal', 'learned', 'none'])
def test_positions_options_build_and_stay_causal(position):
  model, cfg = tiny_model(position=position)
  params = init_params(model)
  tokens = random_tokens((1, cfg.seq_len), seed=9)
  edited = tokens.at[:, 5].set((tokens[:, 5] + 1) % VOCAB)
  before = full_log_probs(model, params, tokens)
  after = full_log_probs(model, params, edited)
  np.testing.assert_allclose(before[:, :5], after[:, :5], atol=1e-6)


@pytest.mark.parametrize('kind,read', [('slots', 'slot_embedding'), ('delta', 'memory_read')])
def test_memory_in_a_subset_of_layers(kind, read):
  model, cfg = tiny_model(**{'num_layers': 2, 'memory.layers': '1', 'memory.kind': kind})
  params = init_params(model)['params']
  assert cfg.memory_layers == (1,)
  reads = lambda layer: read in params[f'blocks_{layer}'] or read in params[
      f'blocks_{layer}']['attention']
  assert reads(1) and not reads(0)
  assert 'memories_0' in params and 'memories_1' not in params



@pytest.mark.parametrize('kind', MEMORY_KINDS)
def test_memory_read_does_not_depend_on_the_query_position(kind):
  """The memory has no position: with rope, a token alone in its window (it sees only
  itself and the memory) gets the same attention output wherever it sits."""
  from memgpt_jax.model.attention import SelfAttention  # pylint: disable=import-outside-toplevel
  _, cfg = tiny_model(position='rope', init_std=0.5,  # logits well away from 0
                      **{'memory.kind': kind})
  attention = SelfAttention(cfg)
  x = jax.random.normal(jax.random.key(0), (1, 1, cfg.d_model))
  shape = ((1, cfg.memory_slots, cfg.d_model) if kind == 'slots' else
           (1, cfg.num_heads, cfg.delta.key_dim, cfg.delta.value_dim))
  memory = jax.random.normal(jax.random.key(1), shape)
  window = jnp.zeros((1, cfg.num_heads, cfg.segment_len, cfg.head_dim))  # [B, H, T, D]
  sees = jnp.ones((1, 1), bool)

  apply = jax.jit(attention.apply)  # compiled once, not run op by op

  def alone_at(start):
    mask = (jnp.arange(cfg.segment_len) == start)[None, None, None, :]
    return apply(params, x, start, memory, sees, window, window, mask)[0]

  params = nn.unbox(jax.jit(attention.init)(
      jax.random.key(2), x, 0, memory, sees, window, window,
      (jnp.arange(cfg.segment_len) == 0)[None, None, None, :]))
  first = alone_at(0)
  for start in (1, 5, cfg.segment_len - 1):
    np.testing.assert_allclose(alone_at(start), first, atol=1e-5)


@pytest.mark.parametrize('init_std', [0.02, 0.125])
def test_init_std_sets_the_weight_scale(init_std):
  model, cfg = tiny_model(init_std=init_std)
  params = init_params(model)['params']
  np.testing.assert_allclose(np.std(params['embed']['embedding']), init_std, rtol=0.1)
  residual = np.std(params['blocks_0']['mlp']['w2']['kernel'])
  np.testing.assert_allclose(residual, init_std / np.sqrt(2 * cfg.num_layers), rtol=0.15)


@pytest.mark.parametrize('norm_type', ['rmsnorm', 'layernorm'])
@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_norms_compute_flax_norms_and_keep_only_their_input(norm_type, dtype):
  """layers.normalize gives flax's RMSNorm/LayerNorm outputs exactly and their
  gradients, while the backward pass keeps x and the parameters, none of the float32
  internals (three [..., d] arrays per norm in flax's)."""
  x = (3 * jax.random.normal(jax.random.key(0), (2, 8, 16)) + 1).astype(dtype)
  flax_norm = (nn.RMSNorm if norm_type == 'rmsnorm' else nn.LayerNorm)(epsilon=1e-5,
                                                                       dtype=dtype)
  params = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(1), p.shape),
                        flax_norm.init(jax.random.key(2), x))['params']
  ours = lambda x, params: layers.normalize(x, params['scale'], params.get('bias'), dtype,
                                            1e-5)
  theirs = lambda x, params: flax_norm.apply({'params': params}, x)
  np.testing.assert_array_equal(ours(x, params), theirs(x, params))
  cotangent = jax.random.normal(jax.random.key(3), x.shape).astype(dtype)
  (ours_out, ours_backward), (_, their_backward) = (
      jax.vjp(norm, x, params) for norm in (ours, theirs))
  for mine, reference in zip(jax.tree.leaves(ours_backward(cotangent)),
                             jax.tree.leaves(their_backward(cotangent))):
    np.testing.assert_allclose(np.float32(mine), np.float32(reference), rtol=0.02,
                               atol=0.02 * float(jnp.abs(reference).max()))
  kept = [(a.dtype, a.shape) for a in jax.tree.leaves(ours_backward)]
  inputs = [(a.dtype, a.shape) for a in jax.tree.leaves((x, params))]
  assert all(k in inputs for k in kept) and len(kept) <= len(inputs), kept
  assert ours_out.dtype == dtype


def test_mlp_activations_keep_only_their_inputs():
  gate, up = jax.random.normal(jax.random.key(0), (2, 4, 8)).astype(jnp.bfloat16), \
      jax.random.normal(jax.random.key(1), (2, 4, 8)).astype(jnp.bfloat16)
  out, backward = jax.vjp(layers.swiglu, gate, up)
  np.testing.assert_array_equal(out, nn.silu(gate) * up)
  assert len(jax.tree.leaves(backward)) == 2
  out, backward = jax.vjp(layers.gelu, gate)
  np.testing.assert_array_equal(out, nn.gelu(gate))
  assert len(jax.tree.leaves(backward)) == 1


def test_the_scaled_pointer_mixture_starts_at_zero_and_learns_its_share():
  """pointer.mixture='scaled': at share 0 the output is the vocabulary softmax alone,
  exactly, and yet the share's gradient says whether copying would pay (also where the
  clip holds it at 0); the pointer heads learn from the auxiliary loss meanwhile; and
  with a share the full distribution and the targets' log-probs agree."""
  model, cfg = tiny_model(**{'pointer.mixture': 'scaled', 'memory.enabled': False})
  params = init_params(model)
  assert float(params['params']['pointer']['share']) == 0.0
  tokens = random_tokens((2, cfg.seq_len))
  batch = {'targets': jnp.roll(tokens, -1, axis=1), 'mask': jnp.ones(tokens.shape)}
  vocab_only = jax.nn.log_softmax(forward(model, params, tokens).vocab_logits, -1)
  np.testing.assert_allclose(full_log_probs(model, params, tokens),
                             vocab_only.reshape(2, cfg.seq_len, VOCAB), rtol=0, atol=1e-6)

  @functools.partial(jax.jit, static_argnums=1)
  def grads(params, aux_weight):
    loss = lambda p: losses.train_loss(model.apply(p, tokens), batch, 0.0,
                                       pointer_aux_weight=aux_weight)[0]
    return jax.grad(loss)(params)['params']['pointer']

  for sigma in (0.0, -0.5):  # at the clip's edge and below it: the same share, 0
    at = jax.tree.map(lambda x: x, params)
    at['params']['pointer']['share'] = jnp.float32(sigma)
    without_aux, with_aux = grads(at, 0.0), grads(at, 1.0)
    assert np.isfinite(without_aux['share']) and without_aux['share'] != 0.0
    np.testing.assert_array_equal(without_aux['query']['kernel'], 0.0)
    assert np.abs(with_aux['query']['kernel']).max() > 0.0
  params['params']['pointer']['share'] = jnp.float32(0.3)
  output = jax.jit(model.apply)(params, tokens)
  full = losses.next_token_log_probs(output)
  np.testing.assert_allclose(
      jnp.take_along_axis(full, batch['targets'][..., None], -1)[..., 0],
      losses.token_log_probs(output, batch['targets']).reshape(2, -1), atol=1e-5)
  assert np.abs(full - vocab_only.reshape(2, cfg.seq_len, VOCAB)).max() > 1e-3
