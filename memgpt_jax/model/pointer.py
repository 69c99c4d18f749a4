"""Pointer heads: copy a token of the context instead of generating.

At position t the candidates are the earlier positions j < t of the same document in
the segment plus the last P positions of earlier segments (a stop-gradient cache).
Pointing at j proposes x_{j+1}, which is already known (induction-style copying), or,
for a seq2seq input position with pointer.copy_inputs, x_j itself (pointer-generator
copying from the source; an encoder-decoder's source positions follow the same
setting). With scores

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

With pointer.mixture='scaled' the output is (1 - s) softmax(W_E h_t) + s p(w), with one
learned share s = clip(sigma, 0, 0.99), sigma starting at 0: the output starts as the
vocabulary softmax alone, exactly (a pretrained model's). The clip passes its gradient
straight through, so sigma learns where copying would pay even while s is 0 (while the
pointer heads, whose gradient is s times theirs, learn from train.pointer_aux_loss):
    log p_s(y) = log p_vocab(y) + log1p(s * expm1(log p(y) - log p_vocab(y))),
finite with its gradient at s = 0 (the difference is capped at 60 nats, which changes
nothing unless p_vocab(y) < e^-60 p(y)).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.layers import Dense, DenseGeneral, default_init
from memgpt_jax.model.state import MemoryState, WindowCache

# Finite stand-in for -inf: exp() underflows to exactly 0 and no NaN can appear.
NEG_INF = -1e30
MAX_SHARE = 0.99  # pointer.mixture='scaled': the vocabulary keeps at least 1%
_MAX_LOG_RATIO = 60.0


def _following(x: jax.Array) -> jax.Array:
  """[B, C] -> the entry after each position along axis 1, 0 after the last."""
  return jnp.concatenate([x[:, 1:], jnp.zeros_like(x[:, :1])], axis=1)


def source_proposals(tokens: jax.Array, docs: jax.Array, copy_inputs: bool) -> jax.Array:
  """What pointing at each source position [B, S] copies: its own token
  (pointer.copy_inputs, pointer-generator), or the token after it in the same example
  (induction, as for the decoder's own candidates; 0 after an example's last token)."""
  if copy_inputs:
    return tokens
  return jnp.where(_following(docs) == docs, _following(tokens), 0)


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
  proposals = _following(stream)
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

    if cfg.pointer_mixture == 'scaled':
      self.raw_share = self.param(
          'share', nn.with_logical_partitioning(nn.initializers.zeros, ()), (), jnp.float32)

  def keys(self, hidden: jax.Array) -> jax.Array:
    """hidden [B, L, d] -> candidate keys [B, L, heads, d_p], float32."""
    return self.key(hidden.astype(jnp.float32))

  def __call__(
      self,
      hidden: jax.Array,  # [B, L, d], the final normed hidden states
      keys: jax.Array,  # [B, C, heads, d_p]
      valid: jax.Array,  # [B, L, C] bool: may position l point at candidate c
  ) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """-> log g [B, L], log a [B, L, heads, C]: the log-softmax over [sentinel ; all
    heads], and the mixture's share s [B, L] (None: pointer.mixture 'sentinel')."""
    hidden = hidden.astype(jnp.float32)
    query = self.query(hidden)
    scores = jnp.einsum('blhd,bchd->blhc', query, keys) / jnp.sqrt(
        jnp.float32(self.cfg.pointer_head_dim))
    scores = jnp.where(valid[:, :, None, :], scores, NEG_INF)
    sentinel = self.sentinel(hidden)  # [B, L, 1]
    batch, length = hidden.shape[:2]
    flat = jnp.concatenate([sentinel, scores.reshape(batch, length, -1)], axis=-1)
    log_probs = jax.nn.log_softmax(flat, axis=-1)
    share = None
    if self.cfg.pointer_mixture == 'scaled':
      sigma = self.raw_share
      clipped = jnp.clip(sigma, 0.0, MAX_SHARE)
      share = jnp.broadcast_to(sigma + jax.lax.stop_gradient(clipped - sigma), (batch, length))
    return log_probs[..., 0], log_probs[..., 1:].reshape(scores.shape), share


def target_log_probs(
    vocab_logits: jax.Array,  # [..., L, V]
    targets: jax.Array,  # [..., L]
    log_gate: jax.Array | None = None,  # [..., L]
    log_attn: jax.Array | None = None,  # [..., L, heads, C]
    proposals: jax.Array | None = None,  # [..., C]
    share: jax.Array | None = None,  # [..., L]: pointer.mixture 'scaled'
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
  log_mixture = jax.nn.logsumexp(parts, axis=-1)
  if share is None:
    return log_mixture
  ratio = jnp.minimum(log_mixture - log_vocab, _MAX_LOG_RATIO)
  return log_vocab + jnp.log1p(share * jnp.expm1(ratio))


def mixture_log_probs(
    vocab_logits: jax.Array,  # [B, L, V]
    log_gate: jax.Array | None = None,  # [B, L]
    log_attn: jax.Array | None = None,  # [B, L, heads, C]
    proposals: jax.Array | None = None,  # [B, C]
    share: jax.Array | None = None,  # [B, L]: pointer.mixture 'scaled'
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
  if share is not None:
    probs = (1 - share[..., None]) * jnp.exp(log_vocab) + share[..., None] * probs
  return jnp.log(probs)
