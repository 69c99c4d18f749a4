"""Cross-entropy of the pointer mixture, z-loss, and the metrics summed for reporting."""

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
                          output.log_gate, output.log_attn, output.proposals)


def next_token_log_probs(output: SegmentOutput) -> jax.Array:
  """The full next-token log-distribution [B, N, V] (a scatter-add: never in training)."""
  batch, segments, length = output.vocab_logits.shape[:3]
  flat = lambda x: None if x is None else x.reshape(batch * segments, *x.shape[2:])
  full = mixture_log_probs(flat(output.vocab_logits), flat(output.log_gate),
                           flat(output.log_attn), flat(output.proposals))
  return full.reshape(batch, segments * length, -1)


def train_loss(output: SegmentOutput, targets: jax.Array, mask: jax.Array,
               z_loss: float) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean masked cross-entropy (+ z_loss * mean log Z^2) and per-step metrics."""
  mask = _by_segment(mask, output).astype(jnp.float32)
  num_tokens = jnp.maximum(mask.sum(), 1.0)
  nll = -(token_log_probs(output, targets) * mask).sum() / num_tokens
  log_z = jax.nn.logsumexp(output.vocab_logits.astype(jnp.float32), axis=-1)
  z_term = z_loss * (jnp.square(log_z) * mask).sum() / num_tokens
  metrics = {'loss': nll, 'z_loss': z_term}
  if output.log_gate is not None:
    metrics['pointer_gate'] = (jnp.exp(output.log_gate) * mask).sum() / num_tokens
  return nll + z_term, metrics


def eval_sums(output: SegmentOutput, targets: jax.Array,
              mask: jax.Array) -> dict[str, jax.Array]:
  """Sums over the batch, so that eval batches of any size aggregate exactly.

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
  if output.log_gate is not None:
    gate = jnp.exp(output.log_gate)
    log_p_vocab = target_log_probs(output.vocab_logits, targets)
    copied = 1.0 - gate * jnp.exp(log_p_vocab - log_p)  # share of p(y) from copying
    sums['pointer_gate'] = (gate * mask).sum()
    sums['copy_share'] = (copied * mask).sum()
  return sums
