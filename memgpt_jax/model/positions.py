"""Positional encodings. Positions count within the segment; memory slots have none."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.layers import default_init


def sinusoidal(positions: jax.Array, dim: int) -> jax.Array:
  """Fixed sin/cos table at `positions` [L] -> [L, dim]."""
  inv_freq = 1.0 / (10_000.0 ** (jnp.arange(0, dim, 2, dtype=jnp.float32) / dim))
  angles = positions.astype(jnp.float32)[:, None] * inv_freq[None, :]
  return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


@functools.lru_cache(maxsize=None)
def rope_table(length: int, dim: int, base: float) -> tuple[np.ndarray, np.ndarray]:
  """sin and cos [length, dim / 2] of the rotary angles of positions 0 .. length - 1,
  computed on the host (in float64, rounded once): constants of the program. Computed
  in it, XLA fuses them into each of their uses and evaluates them again for every
  batch row and head: the default train step's rotations took 85 thread-ms on a CPU
  that way, 22 from the table. Cached: one pair of arrays per shape, so a program holds
  one copy however many layers rotate (read-only, as they are shared)."""
  half = dim // 2
  inv_freq = 1.0 / base ** (np.arange(half, dtype=np.float64) / half)
  angles = np.arange(length, dtype=np.float64)[:, None] * inv_freq[None, :]
  tables = np.sin(angles).astype(np.float32), np.cos(angles).astype(np.float32)
  for table in tables:
    table.flags.writeable = False
  return tables


def apply_rope(x: jax.Array, start: jax.Array | int, table: tuple[np.ndarray, np.ndarray]
               ) -> jax.Array:
  """Rotary embedding of x [B, L, H, D] at positions start .. start + L - 1
  (rotate-half convention), its angles from `table` (rope_table)."""
  sin, cos = (jax.lax.dynamic_slice_in_dim(t, start, x.shape[1])[None, :, None, :]
              for t in table)  # [1, L, 1, D/2]
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
