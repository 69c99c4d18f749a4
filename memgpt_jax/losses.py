"""Cross-entropy of the pointer mixture, z-loss, the pointer's coverage loss and
auxiliary loss, and the metrics summed for reporting."""

import jax
import jax.numpy as jnp

from memgpt_jax.model.pointer import mixture_log_probs, target_log_probs
from memgpt_jax.model.state import SegmentOutput


def _by_segment(x: jax.Array, output: SegmentOutput) -> jax.Array:
  """[B, N] -> [B, K, T] to line up with the model's outputs."""
  return x.reshape(output.vocab_logits.shape[:3])


def token_log_probs(output: SegmentOutput, targets: jax.Array) -> jax.Array:
  """log p(target) [B, K, T] under the model's full next-token distribution."""
  return target_log_probs(output.vocab_logits, _by_segment(targets, output),
                          output.log_gate, output.log_attn, output.proposals,
                          output.pointer_share)


def next_token_log_probs(output: SegmentOutput) -> jax.Array:
  """The full next-token log-distribution [B, N, V] (a scatter-add: never in training)."""
  batch, segments, length = output.vocab_logits.shape[:3]
  flat = lambda x: None if x is None else x.reshape(batch * segments, *x.shape[2:])
  full = mixture_log_probs(flat(output.vocab_logits), flat(output.log_gate),
                           flat(output.log_attn), flat(output.proposals),
                           flat(output.pointer_share))
  return full.reshape(batch, segments * length, -1)


def pointer_attention(output: SegmentOutput) -> jax.Array:
  """The pointer's attention summed over heads, by absolute position: [B, N, N] with
  [b, query t, candidate n]. Segment k's candidate c is position k*T - P + c (after an
  encoder-decoder's source candidates, which source_attention gives)."""
  attn = jnp.exp(output.log_attn[..., output.num_sources:]).sum(axis=-2)  # [B, K, T, C]
  batch, segments, length, candidates = attn.shape
  n = segments * length
  cache_len = candidates - length
  rows = []
  for k in range(segments):  # static: K slices of a zero-padded [B, T, C + 2N]
    padded = jnp.pad(attn[:, k], ((0, 0), (0, 0), (n, n)))
    start = n + cache_len - k * length
    rows.append(padded[:, :, start:start + n])
  return jnp.concatenate(rows, axis=1)


def source_attention(output: SegmentOutput) -> jax.Array:
  """An encoder-decoder's pointer attention to its source positions, summed over heads:
  [B, N, S] with [b, query t, source position s]."""
  attn = jnp.exp(output.log_attn[..., :output.num_sources]).sum(axis=-2)  # [B, K, T, S]
  batch, segments, length, sources = attn.shape
  return attn.reshape(batch, segments * length, sources)


def coverage_loss(output: SegmentOutput, mask: jax.Array, prefix: jax.Array) -> jax.Array:
  """See et al. (2017): sum_n min(a_t(n), sum_{t' < t} a_t'(n)) over input positions n
  (the prefix, or an encoder-decoder's source), averaged over the trained (target)
  positions t: attending again to inputs already copied costs, so summaries repeat
  themselves less."""
  if output.num_sources:
    attn = source_attention(output)
  else:
    attn = pointer_attention(output) * prefix.astype(jnp.float32)[:, None, :]
  mask = mask.astype(jnp.float32)
  coverage = jnp.cumsum(attn * mask[:, :, None], axis=1) - attn * mask[:, :, None]
  per_token = jnp.minimum(attn, coverage).sum(axis=-1)  # [B, N]
  return (per_token * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def effective_log_gate(output: SegmentOutput) -> jax.Array:
  """log of the vocabulary softmax's weight in the output [..., L]: g, or with
  pointer.mixture 'scaled' 1 - s + s g."""
  if output.pointer_share is None:
    return output.log_gate
  return jnp.log1p(output.pointer_share * jnp.expm1(output.log_gate))


def train_loss(output: SegmentOutput, batch: dict[str, jax.Array], z_loss: float,
               coverage_weight: float = 0.0, write_cost: float = 0.0,
               pointer_aux_weight: float = 0.0) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean masked cross-entropy (+ z_loss * mean log Z^2, + coverage_weight * the
  pointer's coverage loss, + write_cost * the delta memory's mean write strength,
  + pointer_aux_weight * the cross-entropy of the pointer's own mixture) and per-step
  metrics."""
  flat_mask = batch['mask']
  mask = _by_segment(flat_mask, output).astype(jnp.float32)
  num_tokens = jnp.maximum(mask.sum(), 1.0)
  nll = -(token_log_probs(output, batch['targets']) * mask).sum() / num_tokens
  log_z = jax.nn.logsumexp(output.vocab_logits.astype(jnp.float32), axis=-1)
  z_term = z_loss * (jnp.square(log_z) * mask).sum() / num_tokens
  metrics = {'loss': nll, 'z_loss': z_term}
  total = nll + z_term
  if output.log_gate is not None:
    metrics['pointer_gate'] = (jnp.exp(effective_log_gate(output)) * mask).sum() / num_tokens
    if output.pointer_share is not None:
      metrics['pointer_share'] = jnp.mean(output.pointer_share)
    if pointer_aux_weight:
      mixture = output.replace(pointer_share=None)
      metrics['pointer_aux_loss'] = -(token_log_probs(mixture, batch['targets']) * mask
                                      ).sum() / num_tokens
      total = total + pointer_aux_weight * metrics['pointer_aux_loss']
    if coverage_weight and 'prefix' in batch:
      metrics['coverage_loss'] = coverage_loss(output, flat_mask, batch['prefix'])
      total = total + coverage_weight * metrics['coverage_loss']
  if output.write_strength is not None:
    metrics['write_strength'] = jnp.mean(output.write_strength)
    if write_cost:  # else beta's gradient, zero, would still be computed
      total = total + write_cost * metrics['write_strength']
  return total, metrics


def eval_sums(output: SegmentOutput, targets: jax.Array, mask: jax.Array,
              groups: jax.Array | None = None, num_groups: int = 0) -> dict[str, jax.Array]:
  """Sums over the batch, so that eval batches of any size aggregate exactly; with
  `groups` ([B, N] ints in [0, num_groups): each target's group, e.g. how far into
  its document it is) also the nll and tokens of each group ([num_groups] each).

  Builds the full distribution (a scatter-add) for the accuracy: evaluation only.
  """
  log_p = token_log_probs(output, targets)
  correct = _by_segment(next_token_log_probs(output).argmax(-1) == targets, output)
  targets = _by_segment(targets, output)
  mask = _by_segment(mask, output).astype(jnp.float32)
  sums = {
      'nll': -(log_p * mask).sum(),
      'tokens': mask.sum(),
      'correct': (correct * mask).sum(),
  }
  if groups is not None:
    groups = _by_segment(groups, output).ravel()
    sums['group_nll'] = jax.ops.segment_sum(-(log_p * mask).ravel(), groups, num_groups)
    sums['group_tokens'] = jax.ops.segment_sum(mask.ravel(), groups, num_groups)
  if output.log_gate is not None:
    log_gate = effective_log_gate(output)
    gate = jnp.exp(log_gate)
    log_p_vocab = target_log_probs(output.vocab_logits, targets)
    # 1 - g p_vocab(y) / p(y), the share of p(y) from copying, in log space: as
    # g * exp(log p_vocab - log p) it is 0 * inf = NaN where g underflows and y cannot be
    # copied, and a NaN off the mask (times 0) still makes the sum NaN.
    copied = -jnp.expm1(log_gate + log_p_vocab - log_p)
    sums['pointer_gate'] = (gate * mask).sum()
    sums['copy_share'] = (copied * mask).sum()
  return sums
