"""Pointer heads: copy a token of the context instead of generating.

At position t the candidates are the earlier positions j < t of the same document in
the segment plus the last P positions of earlier segments (a stop-gradient cache).
Pointing at j proposes x_{j+1}, which is already known (induction-style copying), or,
for a seq2seq input position with pointer.copy_inputs, x_j itself (pointer-generator
copying from the source). With scores

    e_j = (W_q h_t) . (W_k h_j) / sqrt(d_p)      (every head, every candidate)
    e_s = w_s . h_t + b_s                         (the sentinel)
    a   = softmax([e_s ; e_C])                    (ONE softmax over all heads)
    g_t = a_s

the next-token distribution is the mixture

    p(w) = g_t * softmax(W_E h_t)(w) + sum_{j : proposal_j = w} a_j.

Training needs only the target's probability, taken in float32 log space:

    log p(y) = logsumexp(log g_t + log p_vocab(y), {log a_j : proposal_j = y}),

so no [T, T, V] tensor is built and nothing is scattered into the vocabulary.
Decoding builds the full distribution of one position with a scatter-add.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.layers import Dense, DenseGeneral, default_init
from memgpt_jax.model.state import MemoryState, WindowCache

# Finite stand-in for -inf: exp() underflows to exactly 0 and no NaN can appear.
NEG_INF = -1e30


def candidates(
    state: MemoryState,  # its pointer cache: the last P positions of earlier segments
    window: WindowCache,  # this segment, pointer keys written up to the chunk's end
    doc_ids: jax.Array,  # [B, L] the chunk's documents
    positions: jax.Array,  # [L] the chunk's positions in the segment
    copy_inputs: bool,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The chunk's candidates, [cache (P) ; this segment (T)] as one token stream of C:
  -> (keys [B, C, heads, d_p], valid [B, L, C], proposals [B, C]).

  Position t may point at the whole cache and at j < t of the segment, of its own
  document; candidate c proposes the token after it, or, a seq2seq input with
  copy_inputs, itself."""
  segment_len = window.tokens.shape[1]
  keys = jnp.concatenate([state.pointer_keys, window.pointer_keys], axis=1)
  docs = jnp.concatenate([state.pointer_docs, window.docs], axis=1)  # [B, C]
  earlier = jnp.concatenate([  # [L, C]
      jnp.ones((len(positions), state.pointer_docs.shape[1]), bool),
      jnp.arange(segment_len)[None, :] < positions[:, None]], axis=1)
  valid = earlier[None] & (docs[:, None, :] == doc_ids[:, :, None])
  stream = jnp.concatenate([state.pointer_tokens, window.tokens], axis=1)  # [B, C]
  proposals = jnp.concatenate([stream[:, 1:], jnp.zeros_like(stream[:, :1])], axis=1)
  if copy_inputs:
    stream_prefix = jnp.concatenate([state.pointer_prefix, window.prefix], axis=1)
    proposals = jnp.where(stream_prefix, stream, proposals)
  return keys, valid, proposals


class PointerHeads(nn.Module):
  cfg: ModelConfig

  def setup(self):
    cfg = self.cfg
    projection = lambda: DenseGeneral(
        (cfg.pointer_heads, cfg.pointer_head_dim), use_bias=False,
        kernel_init=nn.with_logical_partitioning(default_init(cfg), ('embed', None, 'kv')),
        dtype=jnp.float32)
    self.query, self.key = projection(), projection()
    # The sentinel starts as likely as all candidates together (g ~ 1/2 on a full
    # window), so the vocabulary softmax is not drowned by copies at initialisation.
    self.sentinel = Dense(
        1, kernel_init=nn.with_logical_partitioning(default_init(cfg), ('embed', None)),
        dtype=jnp.float32, bias_init=nn.with_logical_partitioning(
            nn.initializers.constant(jnp.log(cfg.num_candidates)), (None,)))

  def keys(self, hidden: jax.Array) -> jax.Array:
    """hidden [B, L, d] -> candidate keys [B, L, heads, d_p], float32."""
    return self.key(hidden.astype(jnp.float32))

  def __call__(
      self,
      hidden: jax.Array,  # [B, L, d], the final normed hidden states
      keys: jax.Array,  # [B, C, heads, d_p]
      valid: jax.Array,  # [B, L, C] bool: may position l point at candidate c
  ) -> tuple[jax.Array, jax.Array]:
    """-> log g [B, L], log a [B, L, heads, C]: the log-softmax over [sentinel ; all heads]."""
    hidden = hidden.astype(jnp.float32)
    query = self.query(hidden)
    scores = jnp.einsum('blhd,bchd->blhc', query, keys) / jnp.sqrt(
        jnp.float32(self.cfg.pointer_head_dim))
    scores = jnp.where(valid[:, :, None, :], scores, NEG_INF)
    sentinel = self.sentinel(hidden)  # [B, L, 1]
    batch, length = hidden.shape[:2]
    flat = jnp.concatenate([sentinel, scores.reshape(batch, length, -1)], axis=-1)
    log_probs = jax.nn.log_softmax(flat, axis=-1)
    return log_probs[..., 0], log_probs[..., 1:].reshape(scores.shape)


def target_log_probs(
    vocab_logits: jax.Array,  # [..., L, V]
    targets: jax.Array,  # [..., L]
    log_gate: jax.Array | None = None,  # [..., L]
    log_attn: jax.Array | None = None,  # [..., L, heads, C]
    proposals: jax.Array | None = None,  # [..., C]
) -> jax.Array:
  """log p(targets) [..., L] under the vocabulary softmax, mixed with the pointer if given."""
  log_vocab = jax.nn.log_softmax(vocab_logits.astype(jnp.float32), axis=-1)
  log_vocab = jnp.take_along_axis(log_vocab, targets[..., None], axis=-1)[..., 0]
  if log_attn is None:
    return log_vocab
  copies = proposals[..., None, None, :] == targets[..., :, None, None]  # [..., L, 1, C]
  log_copy = jnp.where(copies, log_attn, NEG_INF)
  log_copy = log_copy.reshape(*log_copy.shape[:-2], -1)
  parts = jnp.concatenate([(log_gate + log_vocab)[..., None], log_copy], axis=-1)
  return jax.nn.logsumexp(parts, axis=-1)


def mixture_log_probs(
    vocab_logits: jax.Array,  # [B, L, V]
    log_gate: jax.Array | None = None,  # [B, L]
    log_attn: jax.Array | None = None,  # [B, L, heads, C]
    proposals: jax.Array | None = None,  # [B, C]
) -> jax.Array:
  """The full next-token log-distribution [B, L, V] (for decoding: a scatter-add)."""
  log_vocab = jax.nn.log_softmax(vocab_logits.astype(jnp.float32), axis=-1)
  if log_attn is None:
    return log_vocab
  batch, length, heads, num_candidates = log_attn.shape
  probs = jnp.exp(log_gate)[..., None] * jnp.exp(log_vocab)
  copy_mass = jnp.exp(log_attn).reshape(batch, length, heads * num_candidates)
  index = jnp.tile(proposals, (1, heads))[:, None, :]  # [B, 1, heads * C]
  rows = jnp.arange(batch)[:, None, None]
  cols = jnp.arange(length)[None, :, None]
  probs = probs.at[rows, cols, index].add(copy_mass)
  return jnp.log(probs)
