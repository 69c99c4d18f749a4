"""One pre-norm Transformer block whose attention also reads the layer's memory."""

import flax.linen as nn
import jax

from memgpt_jax.model.attention import SelfAttention
from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.layers import Mlp, default_init, make_norm
from memgpt_jax.model.state import DeltaState


class Block(nn.Module):
  """x + Attn(norm(x) | memory) ; x + Mlp(norm(x)). The memory is the slots (read as
  norm(M) + a slot embedding) or the delta matrix."""
  cfg: ModelConfig
  has_memory: bool
  deterministic: bool = True

  @nn.compact
  def __call__(
      self,
      x: jax.Array,  # [B, L, d]
      start: jax.Array,  # scalar: segment position of x[:, 0]
      # [B, S, d] float32 slots, a DeltaState, or None for a layer without memory.
      memory: jax.Array | DeltaState | None,
      sees_memory: jax.Array,  # [B, L] bool
      window_keys: jax.Array,  # [B, T, H, D]
      window_values: jax.Array,  # [B, T, H, D]
      mask: jax.Array,  # [B, 1, L, T]
  ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """-> (x, window keys, window values, what the memory write reads: [B, L, d])."""
    cfg = self.cfg
    attention_norm = make_norm(cfg, name='attention_norm')
    normed = attention_norm(x)
    read = None
    if self.has_memory and cfg.memory_kind == 'delta':
      read = memory.matrix
    elif self.has_memory:
      slot_embedding = self.param(
          'slot_embedding', nn.with_logical_partitioning(default_init(cfg), ('slots', 'embed')),
          (cfg.memory_slots, cfg.d_model))
      read = attention_norm(memory) + slot_embedding.astype(cfg.compute_dtype)
    attended, window_keys, window_values = SelfAttention(cfg, name='attention')(
        normed, start, read, sees_memory, window_keys, window_values, mask)
    dropout = nn.Dropout(cfg.dropout_rate, deterministic=self.deterministic)
    x = x + dropout(attended)
    x = x + dropout(Mlp(cfg, name='mlp')(make_norm(cfg, name='mlp_norm')(x)))
    return x, window_keys, window_values, normed if cfg.memory_kind == 'delta' else x
