"""The delta-rule associative memory of one layer (model.memory.kind='delta').

Per head a matrix S in R^{d_k x d_v}, float32, zero at the start of every example
and every document. x_t is the layer's normed input (what its attention reads).

Read, every token t of segment s, from S as it stood at the end of segment s-1:

    q_t   = normalize(phi(W_q x_t))              r_t = q_t S
    out_t = g_t r_t + (1 - g_t) attention_t      (per head, before the output projection)

with the read gate g_t = sigmoid(w_g x_t + b_g) ('token'), sigmoid(b_g) ('head'), or
none (out = attention + r); b_g starts negative so the memory starts as a minority.
No position rotation: the read matches content only.

Write, after the segment, its tokens in order:

    k_t = normalize(phi(W_k [x_t ; x_{t-1}]))    the key sees the previous token, so a
                                                 value is filed under the token before it
    v_t = W_v x_t
    beta_t = sigmoid(w_b x_t + b)                ('learned'; 'sparse': clip(w_b x_t + b,
                                                 0, 1), exactly 0 for tokens not worth
                                                 keeping; 'fixed': 1; 'pointer': read
                                                 off the pointer heads' key of token t)
    S <- alpha_t S + beta_t k_t (v_t - alpha_t S^T k_t)^T

with alpha_t = 1, or learned (decay='learned': alpha_t = sigmoid(w_a x_t + b_a)), and
beta_t = 0 for tokens that are not written (another document's). The delta rule
replaces what S held under k_t instead of adding to it, so pairs filed under different
keys interfere little, and writing a pair again changes nothing. Every write still
moves S along its key, so over a long stream a memory that writes everything forgets;
train.write_cost charges for mean beta, and with 'sparse' the tokens it prices out
write exactly nothing however long the stream (price_full_writes: those that the clip
holds at 1 too, which otherwise give the cost no gradient).

Each side projects x once per layer and head: the read [W_q ; w_g] x, the write
[W_k,0 ; W_k,1 ; W_v] x (what its knobs use of these); beta's and alpha's logits have
products of their own.

The chunked form writes the whole segment at once. With gamma_t = alpha_1 ... alpha_t
(1 without decay) and Gamma_ti = gamma_t / gamma_i,

    U  = (I + tril_{-1}(diag(beta) (K K^T o Gamma)))^{-1} diag(beta) (V - diag(gamma) K S)
    S' = gamma_T S + K^T diag(gamma_T / gamma) U

one unit-lower-triangular solve per chunk of tokens; it equals the token-by-token scan
(tests/test_delta_memory.py). The inverses do not depend on S: every chunk's is
computed at once, so that on an accelerator the chunks share each of the inversion's
small matmuls instead of launching their own, and only the products with S run chunk
after chunk.
"""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.layers import DenseGeneral, default_init
from memgpt_jax.model.state import DeltaState

FEATURE_MAPS = {
    'silu': jax.nn.silu,
    'elu_plus_one': lambda x: jax.nn.elu(x) + 1.0,
    'identity': lambda x: x,
}


def l2_normalize(x: jax.Array, eps: float = 1e-6) -> jax.Array:
  return x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + eps)


@functools.partial(jax.checkpoint, static_argnums=(0,))
def unit_features(feature_map: str, x: jax.Array) -> jax.Array:
  """normalize(phi(x)) in float32. Recomputed in the backward pass from x alone: its
  intermediates would otherwise be kept for every segment of the scan."""
  return l2_normalize(FEATURE_MAPS[feature_map](x.astype(jnp.float32)))


def delta_rule_scan(
    matrix: jax.Array,  # [B, H, d_k, d_v] float32
    keys: jax.Array,  # [B, T, H, d_k], unit norm
    values: jax.Array,  # [B, T, H, d_v]
    beta: jax.Array,  # [B, T, H]
    log_decay: jax.Array | None = None,  # [B, T, H] log alpha_t; None: alpha = 1
) -> jax.Array:
  """The delta rule one token at a time: -> S after the last token [B, H, d_k, d_v]."""

  def step(state, inputs):
    key, value, strength, log_alpha = inputs  # [B, H, d_k], [B, H, d_v], [B, H], [B, H]
    if log_alpha is not None:
      state = jnp.exp(log_alpha)[..., None, None] * state
    error = value - jnp.einsum('bhk,bhkv->bhv', key, state)
    return state + (strength[..., None] * key)[..., :, None] * error[..., None, :], None

  by_token = lambda x: None if x is None else jnp.moveaxis(x, 1, 0)
  return jax.lax.scan(step, matrix, (by_token(keys), by_token(values), by_token(beta),
                                     by_token(log_decay)))[0]


def _unit_lower_inverse(lower: jax.Array) -> jax.Array:
  """(I + lower)^{-1} for a strictly lower-triangular `lower` [..., T, T].

  Blockwise, doubling the block size: inv([[A, 0], [C, B]]) = [[inv A, 0],
  [-inv B C inv A, inv B]], so log2(T) rounds of batched matmuls, as stable as
  forward substitution.
  """
  length = lower.shape[-1]
  size = 1 << max(length - 1, 0).bit_length()  # the next power of two
  batch = lower.shape[:-2]
  full = jnp.zeros(batch + (size, size), lower.dtype).at[..., :length, :length].set(lower)
  inverse = jnp.ones(batch + (size, 1, 1), lower.dtype)  # the inverted diagonal blocks
  block = 1
  while block < size:
    count = size // (2 * block)
    tiles = full.reshape(batch + (count, 2 * block, count, 2 * block))
    tiles = jnp.moveaxis(jnp.diagonal(tiles, axis1=-4, axis2=-2), -1, -3)  # [.., count, 2b, 2b]
    first, second = inverse[..., 0::2, :, :], inverse[..., 1::2, :, :]
    corner = -second @ tiles[..., block:, :block] @ first
    inverse = jnp.concatenate([
        jnp.concatenate([first, jnp.zeros_like(first)], axis=-1),
        jnp.concatenate([corner, second], axis=-1)], axis=-2)
    block *= 2
  return inverse[..., 0, :length, :length]


@jax.custom_vjp
def solve_unit_lower(lower: jax.Array, inverse: jax.Array, rhs: jax.Array) -> jax.Array:
  """X = (I + lower)^{-1} rhs for a strictly lower-triangular `lower` [..., T, T] and
  rhs [..., T, n], given `inverse` = (I + lower)^{-1} (_unit_lower_inverse: matmuls
  only, where jax.lax.linalg.triangular_solve calls LAPACK on the CPU, and inside the
  model's scanned, differentiated step it deadlocked there). Gradients reach `lower`
  and `rhs`, not `inverse`: its own backward pass would cost two T x T x T matmuls
  where the solve's needs one T x n x T."""
  return inverse @ rhs


def _solve_forward(lower, inverse, rhs):
  del lower
  solution = inverse @ rhs
  return solution, (inverse, solution)


def _solve_backward(residuals, grad):
  """With M = I + lower and X = M^{-1} rhs: d rhs = M^{-T} g, d lower = -(d rhs) X^T
  on the strict lower triangle (the only entries `lower` has)."""
  inverse, solution = residuals
  grad_rhs = inverse.swapaxes(-1, -2) @ grad
  grad_lower = jnp.tril(-grad_rhs @ solution.swapaxes(-1, -2), -1)
  return grad_lower, jnp.zeros_like(inverse), grad_rhs


solve_unit_lower.defvjp(_solve_forward, _solve_backward)


def delta_rule_chunked(
    matrix: jax.Array,  # [B, H, d_k, d_v] float32
    keys: jax.Array,  # [B, T, H, d_k], unit norm
    values: jax.Array,  # [B, T, H, d_v]
    beta: jax.Array,  # [B, T, H]
    log_decay: jax.Array | None = None,  # [B, T, H] log alpha_t; None: alpha = 1
    chunk_size: int = 64,
    batched_solve: bool = False,
) -> jax.Array:
  """The same update, chunk_size tokens at a time (the solve's work grows with the
  square of its length). A chunk's update is U = (I + L)^{-1} diag(beta) (V - P S),
  P its (decayed) keys and S the state before it. Each chunk's inverse does not depend
  on S: all of them are computed at once, in batched matmuls. Chunk after chunk then
  run P S, the solve and the rank-c update; or, with batched_solve (the WY form), U =
  U_0 - W S where U_0 = (I + L)^{-1} diag(beta) V and W = (I + L)^{-1} diag(beta) P
  are solved for every chunk at once, leaving W S and the update: fewer steps one
  after another (each a kernel launch on an accelerator) for c^2 d_k more
  multiply-adds per chunk."""
  batch, length, heads, _ = keys.shape
  size = min(chunk_size, length)
  chunks = -(-length // size)

  def by_chunk(x):  # [B, T, H, ...] -> [B, H, chunks, size, ...]; zeros pad the last
    if chunks * size > length:
      x = jnp.pad(x, [(0, 0), (0, chunks * size - length)] + [(0, 0)] * (x.ndim - 2))
    return jnp.moveaxis(x.reshape(batch, chunks, size, heads, *x.shape[3:]), 3, 1)

  # Padding tokens have beta 0 and log alpha 0: they write nothing and decay nothing.
  keys, values, beta = by_chunk(keys), by_chunk(values), by_chunk(beta)
  below = jnp.tril(jnp.ones((size, size), bool), -1)
  interactions = jnp.einsum('bhntk,bhnik->bhnti', keys, keys)  # [B, H, n, c, c]
  predicting_keys, written_keys, chunk_decay = keys, keys, None
  if log_decay is not None:
    log_gamma = jnp.cumsum(by_chunk(log_decay), axis=-1)  # [B, H, n, c], within the chunk
    gaps = log_gamma[..., :, None] - log_gamma[..., None, :]  # log Gamma_ti
    interactions = interactions * jnp.exp(jnp.where(below, gaps, 0.0))
    predicting_keys = jnp.exp(log_gamma)[..., None] * keys  # diag(gamma) K
    written_keys = jnp.exp(log_gamma[..., -1:] - log_gamma)[..., None] * keys
    chunk_decay = jnp.exp(log_gamma[..., -1])[..., None, None]  # gamma_T: [B, H, n, 1, 1]
  lower = jnp.where(below, beta[..., :, None] * interactions, 0.0)
  inverse = jax.lax.stop_gradient(_unit_lower_inverse(lower))  # see solve_unit_lower
  if batched_solve:
    value_dim = values.shape[-1]
    solved = solve_unit_lower(lower, inverse, beta[..., None] * jnp.concatenate(
        [values, predicting_keys], axis=-1))  # [B, H, n, c, d_v + d_k]
    base_updates, weights = solved[..., :value_dim], solved[..., value_dim:]  # U_0, W
  for i in range(chunks):
    if batched_solve:
      update = base_updates[:, :, i] - weights[:, :, i] @ matrix  # U: [B, H, c, d_v]
    else:
      predicted = predicting_keys[:, :, i] @ matrix  # diag(gamma) K S: [B, H, c, d_v]
      update = solve_unit_lower(lower[:, :, i], inverse[:, :, i],
                                beta[:, :, i, :, None] * (values[:, :, i] - predicted))
    if chunk_decay is not None:
      matrix = chunk_decay[:, :, i] * matrix
    matrix = matrix + jnp.einsum('bhtk,bhtv->bhkv', written_keys[:, :, i], update)
  return matrix


def write_rule(form: str, chunk_size: int):
  """The delta rule's implementation. 'auto' is the chunked form: on the CPU it trains
  1.5x faster than the scan (experiments/results/bench_cpu.md), and its work is
  batched matmuls where the scan's is T steps one after another."""
  if form == 'scan':
    return delta_rule_scan
  return functools.partial(delta_rule_chunked, chunk_size=chunk_size,
                           batched_solve=form == 'chunked_wy')


def _heads(cfg: ModelConfig, features: int, name: str) -> nn.Module:
  """x [..., d] -> [..., H, features]."""
  return DenseGeneral(
      (cfg.num_heads, features), use_bias=False, dtype=cfg.compute_dtype, name=name,
      kernel_init=nn.with_logical_partitioning(default_init(cfg), ('embed', 'heads', 'kv')))


def _head_logit(cfg: ModelConfig, name: str, bias: float, pointer: bool = False) -> nn.Module:
  """x [..., d] (or, with `pointer`, the pointer heads' keys [..., pointer heads, d_p])
  -> a float32 logit per head [..., H], its bias starting at `bias`."""
  return DenseGeneral(
      cfg.num_heads, axis=(-2, -1) if pointer else -1, dtype=jnp.float32, name=name,
      kernel_init=nn.with_logical_partitioning(
          default_init(cfg), (None, 'kv', 'heads') if pointer else ('embed', 'heads')),
      bias_init=nn.with_logical_partitioning(nn.initializers.constant(bias), ('heads',)))


class DeltaRead(nn.Module):
  """The read, inside the layer's attention: mixes r_t into each head's output."""
  cfg: ModelConfig

  @nn.compact
  def __call__(
      self,
      x: jax.Array,  # [B, L, d], the attention's normed input
      matrix: jax.Array,  # [B, H, d_k, d_v] float32, the state after the previous segment
      sees_memory: jax.Array,  # [B, L] bool: the memory holds the token's document
      attended: jax.Array,  # [B, L, H, D], the local attention's output
  ) -> jax.Array:
    """-> [B, L, H, D]: g r + (1 - g) attention per head (or attention + s r)."""
    cfg, delta = self.cfg, self.cfg.delta
    # One projection per head: [W_q ; w_g] x, the query and ('token') the gate's logit.
    gate_logit = delta.read_gate == 'token'
    projected = _heads(cfg, delta.key_dim + gate_logit, 'project')(x)  # [B, L, H, d_k (+1)]
    query, gate_logits = jnp.split(projected, [delta.key_dim], axis=-1)  # see DeltaMemory
    query = unit_features(delta.feature_map, query)
    read = jnp.einsum('blhk,bhkv->blhv', query, matrix)
    read = jnp.where(sees_memory[:, :, None, None], read, 0.0)
    if delta.value_dim != cfg.head_dim:  # per head, d_v -> D
      to_head = self.param('to_head', nn.with_logical_partitioning(
          default_init(cfg), ('heads', None, 'kv')),
                           (cfg.num_heads, delta.value_dim, cfg.head_dim))
      read = jnp.einsum('blhv,hvd->blhd', read, to_head)
    read = read.astype(attended.dtype)
    if delta.read_gate == 'none':
      return attended + read
    if delta.read_gate == 'scaled':
      scale = self.param('read_scale', nn.with_logical_partitioning(
          nn.initializers.zeros, ('heads',)), (cfg.num_heads,))
      return attended + scale[:, None].astype(attended.dtype) * read
    gate = self.param('gate_bias', nn.with_logical_partitioning(
        nn.initializers.constant(delta.read_gate_bias_init), ('heads',)), (cfg.num_heads,))
    if gate_logit:
      gate = gate_logits[..., 0].astype(jnp.float32) + gate  # [B, L, H]
    gate = jax.nn.sigmoid(gate)[..., None].astype(attended.dtype)  # [B, L, H, 1] or [H, 1]
    return gate * read + (1 - gate) * attended


class DeltaMemory(nn.Module):
  """The write: after a segment, every token of the continuing document in order."""
  cfg: ModelConfig

  def setup(self):
    cfg, delta = self.cfg, self.cfg.delta
    # One projection of x per head: [W_k,0 ; W_k,1 ; W_v] x, the key's two halves (x_t
    # and x_{t-1}) and the value.
    self.key_parts = 2 if delta.key_shift else 1
    self.project = _heads(cfg, self.key_parts * delta.key_dim + delta.value_dim, 'project')
    # The logits of beta and alpha in products of their own: training reports the mean
    # beta of every segment, the last one's too, whose keys and values nothing reads;
    # alone, beta's product is then all that segment's write computes.
    if delta.write_strength in ('learned', 'sparse'):  # beta = 1/2 at the start
      self.strength = _head_logit(cfg, 'strength', 0.5 if delta.write_strength == 'sparse'
                                  else 0.0)
    elif delta.write_strength == 'pointer':
      self.strength = _head_logit(cfg, 'strength', 0.0, pointer=True)
    if delta.decay == 'learned':
      self.decay = _head_logit(cfg, 'decay',
                               math.log(delta.decay_init / (1.0 - delta.decay_init)))

  def initial_state(self, batch_size: int) -> DeltaState:
    cfg = self.cfg
    return DeltaState(
        matrix=jnp.zeros((batch_size, cfg.num_heads, cfg.delta.key_dim, cfg.delta.value_dim)),
        last_input=jnp.zeros((batch_size, cfg.d_model)))

  def __call__(
      self,
      state: DeltaState,
      inputs: jax.Array,  # [B, T, d]: the layer's normed inputs over the segment
      written: jax.Array,  # [B, T] bool: the tokens to write
      continues: jax.Array,  # [B] bool: False resets the memory before the write
      follows: jax.Array,  # [B, T] bool: the token before t is of t's document
      pointer_keys: jax.Array,  # [B, T, pointer heads, d_p] (write_strength='pointer')
  ) -> tuple[DeltaState, jax.Array]:
    """-> (the state after the segment, beta [B, T, H])."""
    cfg, delta = self.cfg, self.cfg.delta
    matrix = jnp.where(continues[:, None, None, None], state.matrix, 0.0)
    dk = delta.key_dim
    # One split, not a slice per part: its gradient is then one concatenation, where
    # slices' gradients are zero-padded to the whole projection and summed (57 of the
    # default train step's 1,766 thread-ms on a CPU).
    parts = jnp.split(self.project(inputs), [dk * (i + 1) for i in range(self.key_parts)],
                      axis=-1)
    key = parts[0]  # [B, T, H, d_k]
    if delta.key_shift:  # W_k [x_t ; x_{t-1}] = W_k,0 x_t + W_k,1 x_{t-1}
      before = self.project(state.last_input[:, None].astype(inputs.dtype))[..., dk:2 * dk]
      previous = jnp.concatenate([before, parts[1][:, :-1]], axis=1)
      key = key + jnp.where(follows[..., None, None], previous, 0)
    keys = unit_features(delta.feature_map, key)  # [B, T, H, d_k]
    values = parts[-1].astype(jnp.float32)  # [B, T, H, d_v]
    if delta.write_strength == 'fixed':
      beta = jnp.ones(written.shape + (cfg.num_heads,))
    elif delta.write_strength == 'sparse':
      logit = self.strength(inputs)
      beta = jnp.clip(logit, 0.0, 1.0)
    elif delta.write_strength == 'learned':
      beta = jax.nn.sigmoid(self.strength(inputs))
    else:
      beta = jax.nn.sigmoid(self.strength(pointer_keys))
    beta = jnp.where(written[..., None], beta, 0.0)  # [B, T, H]
    log_decay = None
    if delta.decay == 'learned':
      log_decay = jnp.where(written[..., None], jax.nn.log_sigmoid(self.decay(inputs)), 0.0)
    matrix = write_rule(delta.write_form, delta.chunk_size)(matrix, keys, values, beta,
                                                            log_decay)
    if delta.price_full_writes:  # beta's value, the gradient of max(logit, 0): the cost's
      beta = beta + jnp.where(written[..., None] & (logit > 1.0),
                              logit - jax.lax.stop_gradient(logit), 0.0)
    return DeltaState(matrix=matrix, last_input=inputs[:, -1].astype(jnp.float32)), beta
