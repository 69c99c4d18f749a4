"""One pre-norm Transformer block whose attention also reads the layer's memory."""

import flax.linen as nn
import jax

from memgpt_jax.model.attention import SelfAttention
from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.layers import Mlp, default_init, make_norm


class Block(nn.Module):
  """x + Attn(norm(x) | norm(M) + slot embedding) ; x + Mlp(norm(x))."""
  cfg: ModelConfig
  has_memory: bool
  deterministic: bool = True

  @nn.compact
  def __call__(
      self,
      x: jax.Array,  # [B, L, d]
      start: jax.Array,  # scalar: segment position of x[:, 0]
      memory: jax.Array | None,  # [B, S, d] float32, or None for a layer without memory
      window_keys: jax.Array,  # [B, T, H, D]
      window_values: jax.Array,  # [B, T, H, D]
      mask: jax.Array,  # [B, 1, L, T]
      slot_mask: jax.Array,  # [B, 1, L, S]
  ) -> tuple[jax.Array, jax.Array, jax.Array]:
    cfg = self.cfg
    attention_norm = make_norm(cfg, name='attention_norm')
    normed_memory = None
    if self.has_memory:
      slot_embedding = self.param(
          'slot_embedding', nn.with_logical_partitioning(default_init(cfg), ('slots', 'embed')),
          (cfg.memory_slots, cfg.d_model))
      normed_memory = attention_norm(memory) + slot_embedding.astype(cfg.compute_dtype)
    attended, window_keys, window_values = SelfAttention(cfg, name='attention')(
        attention_norm(x), start, normed_memory, window_keys, window_values, mask, slot_mask)
    dropout = nn.Dropout(cfg.dropout_rate, deterministic=self.deterministic)
    x = x + dropout(attended)
    x = x + dropout(Mlp(cfg, name='mlp')(make_norm(cfg, name='mlp_norm')(x)))
    return x, window_keys, window_values
