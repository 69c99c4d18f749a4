"""Positional encodings. Positions count within the segment; memory slots have none."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.layers import default_init


def sinusoidal(positions: jax.Array, dim: int) -> jax.Array:
  """Fixed sin/cos table at `positions` [L] -> [L, dim]."""
  inv_freq = 1.0 / (10_000.0 ** (jnp.arange(0, dim, 2, dtype=jnp.float32) / dim))
  angles = positions.astype(jnp.float32)[:, None] * inv_freq[None, :]
  return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def apply_rope(x: jax.Array, positions: jax.Array, base: float) -> jax.Array:
  """Rotary embedding of x [B, L, H, D] at positions [L] (rotate-half convention)."""
  half = x.shape[-1] // 2
  inv_freq = 1.0 / (base ** (jnp.arange(half, dtype=jnp.float32) / half))
  angles = positions.astype(jnp.float32)[:, None] * inv_freq[None, :]  # [L, D/2]
  sin = jnp.sin(angles)[None, :, None, :]
  cos = jnp.cos(angles)[None, :, None, :]
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  rotated = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return rotated.astype(x.dtype)


class AdditivePositions(nn.Module):
  """The encodings added to the token embeddings: learned, sinusoidal, or nothing."""
  cfg: ModelConfig

  @nn.compact
  def __call__(self, positions: jax.Array) -> jax.Array | float:
    cfg = self.cfg
    if cfg.position == 'learned':
      table = self.param('table', nn.with_logical_partitioning(default_init(cfg), (None, 'embed')),
                         (cfg.segment_len, cfg.d_model))
      return jnp.take(table, positions, axis=0).astype(cfg.compute_dtype)
    if cfg.position == 'sinusoidal':
      return sinusoidal(positions, cfg.d_model).astype(cfg.compute_dtype)
    return 0.0  # rope acts inside attention; 'none' has no positions at all
