"""The fast paths compute what the plain path computes: fused or spelled-out attention,
unrolled or looped segments, scanned or unrolled layers, every remat policy (the
switches of model.* that pick how the math runs, not what it is)."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import full_log_probs, init_params, random_tokens, tiny_model
from memgpt_jax import losses
from memgpt_jax.decode import Decoder
from memgpt_jax.model.transformer import unrolled_layers
from memgpt_jax.training.optimizer import make_optimizer


@pytest.mark.parametrize('variants', [
    # How the window's softmax runs, with the delta memory's read and without memory.
    ({'attention': 'einsum'}, {'attention': 'fused'}),
    ({'attention': 'einsum', 'memory.enabled': False},
     {'attention': 'fused', 'memory.enabled': False}),
    # The segment loop, unrolled or not, for both memory kinds.
    ({'segment_unroll': 1}, {'segment_unroll': 0}),
    ({'segment_unroll': 1, 'memory.kind': 'slots'}, {'segment_unroll': 2, 'memory.kind': 'slots'}),
])
def test_fast_paths_give_the_same_outputs(variants):
  """model.attention and model.segment_unroll only pick how the same math runs."""
  outputs, params = [], None
  for overrides in variants:
    model, cfg = tiny_model(**overrides)
    params = params or init_params(model)  # the same parameters: the variants change none
    tokens = random_tokens((2, cfg.seq_len), seed=8)
    outputs.append(full_log_probs(model, params, tokens))
  np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-5)


@pytest.mark.parametrize('overrides', [
    {'attention': 'einsum'}, {'attention': 'fused'},
    {'attention': 'fused', 'memory.kind': 'slots', 'scan_layers': True, 'remat': 'dots'},
])
def test_rows_without_documents_take_plain_causality(overrides):
  """Rows given no doc_ids and no prefix attend under plain causality (the fused
  kernel's own causal mode): the same log-probs and gradients as the same rows given as
  one document with an all-false prefix, which build the full mask."""
  model, cfg = tiny_model(**overrides)
  params = init_params(model)
  tokens = random_tokens((2, cfg.seq_len), seed=5)
  one_document = (jnp.ones_like(tokens), jnp.zeros(tokens.shape, bool))
  np.testing.assert_allclose(full_log_probs(model, params, tokens),
                             full_log_probs(model, params, tokens, *one_document), atol=1e-6)
  grads = lambda *rows: jax.jit(jax.grad(lambda p: losses.token_log_probs(
      model.apply(p, tokens, *rows), tokens)[:, :-1].mean()))(params)
  jax.tree.map(functools.partial(np.testing.assert_allclose, atol=1e-6),
               grads(), grads(*one_document))


@pytest.mark.parametrize('overrides,check_gradients', [
    ({'memory.kind': 'delta', 'num_layers': 2}, True),  # memory in every layer: groups of 1
    ({'memory.kind': 'slots', 'num_layers': 4, 'memory.layers': '1,3'}, False),  # of 2
])
def test_scan_over_layers_computes_what_the_unrolled_layers_do(overrides, check_gradients):
  """model.scan_layers on the same parameters: the same log-probs, cached decoding,
  gradients and optimizer update (weight decay on the same parameters) as the
  unrolled layers. (The pointer, off here, reads the last layer's output whichever way
  the layers run.)"""
  overrides = {**overrides, 'pointer.enabled': False}
  unrolled, cfg = tiny_model(**overrides)
  scanned, scanned_cfg = tiny_model(**overrides, scan_layers=True)
  stacked = init_params(scanned)
  params = unrolled_layers(stacked, scanned_cfg)
  shape_of = lambda tree: jax.tree.map(jnp.shape, tree)
  assert shape_of(params) == shape_of(nn.unbox(jax.eval_shape(
      unrolled.init, jax.random.key(0), jnp.zeros((2, cfg.segment_len), jnp.int32))))
  tokens = random_tokens((2, cfg.seq_len), seed=12)
  want = full_log_probs(unrolled, params, tokens)
  np.testing.assert_allclose(full_log_probs(scanned, stacked, tokens), want, atol=1e-6)
  fed = cfg.segment_len + 3  # a memory write, then part of a segment
  decoder = Decoder(scanned, stacked)
  log_probs, _ = decoder.feed(decoder.start(2), tokens[:, :fed])
  np.testing.assert_allclose(log_probs, want[:, :fed], atol=2e-6)
  if check_gradients:
    grads = lambda model, p: jax.jit(jax.grad(lambda p: -losses.token_log_probs(
        model.apply(p, tokens), tokens)[:, :-1].mean()))(p)
    scanned_grads, unrolled_grads = grads(scanned, stacked), grads(unrolled, params)
    jax.tree.map(functools.partial(np.testing.assert_allclose, atol=1e-6),
                 unrolled_layers(scanned_grads, scanned_cfg), unrolled_grads)
    train = ml_collections.ConfigDict({'grad_clip_norm': 1.0, 'adam_b1': 0.9,
                                       'adam_b2': 0.95, 'weight_decay': 0.1})
    optimizer = make_optimizer(train)
    update = lambda g, p: optimizer.update(g, optimizer.init(p), p)[0]
    # Adam's first step is about g / |g|: rounding in g shows at 1e-5, decay at 1e-3.
    jax.tree.map(functools.partial(np.testing.assert_allclose, atol=1e-4),
                 unrolled_layers(update(scanned_grads, stacked), scanned_cfg),
                 update(unrolled_grads, params))


def test_remat_policies_give_the_gradients_of_keeping_everything():
  """model.remat trades memory for recomputation: the gradients stay the same."""
  gradients, params = {}, None
  for policy in ('none', 'dots', 'full'):
    model, cfg = tiny_model(remat=policy)
    params = params or init_params(model)  # the same parameters: remat changes none
    tokens = random_tokens((2, cfg.seq_len), seed=10)
    gradients[policy] = jax.jit(jax.grad(lambda p, model=model, tokens=tokens: jnp.mean(
        losses.next_token_log_probs(model.apply(p, tokens))[..., 0])))(params)
  for policy in ('dots', 'full'):
    jax.tree.map(functools.partial(np.testing.assert_allclose, atol=1e-6, err_msg=policy),
                 gradients['none'], gradients[policy])
