"""One pre-norm Transformer block whose attention also reads the layer's memory, and
the group of blocks that a scan over the depth repeats (model.scan_layers)."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from memgpt_jax.model.attention import CrossAttention, SelfAttention
from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.layers import Mlp, Norm, default_init
from memgpt_jax.model.state import DeltaState
from memgpt_jax.parallel.sharding import constrain


RESIDUAL = ('batch', None, None)  # [B, L, d]: rows split, width whole


class Block(nn.Module):
  """x + Attn(norm(x) | memory) ; [x + CrossAttn(norm(x), source)] ; x + Mlp(norm(x)).
  The memory is the slots (read as norm(M) + a slot embedding) or the delta matrix;
  the cross-attention is an encoder-decoder's decoder's."""
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
      window_keys: jax.Array,  # [B, H, T, D]
      window_values: jax.Array,  # [B, H, T, D]
      mask: jax.Array | None,  # [B, 1, L, T]; None: plain causal (SelfAttention)
      # The decoder's: this layer's source keys and values [B, H, S, D] and which
      # source positions each query sees [B, 1, L, S]; None elsewhere.
      cross: tuple[jax.Array, jax.Array, jax.Array] | None = None,
  ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """-> (x, window keys, window values, what the memory write reads: [B, L, d])."""
    cfg = self.cfg
    x = constrain(x, RESIDUAL)
    attention_norm = Norm(cfg, name='attention_norm')
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
    if cross is not None:
      x = x + dropout(CrossAttention(cfg, name='cross_attention')(
          Norm(cfg, name='cross_attention_norm')(x), *cross))
    x = x + dropout(Mlp(cfg, name='mlp')(Norm(cfg, name='mlp_norm')(x)))
    x = constrain(x, RESIDUAL)
    return x, window_keys, window_values, normed if cfg.memory_kind == 'delta' else x


# model.remat: what a block keeps for the backward pass (None: nothing but its input).
REMAT_POLICIES = {'dots': jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
                  'full': None}


def block_class(cfg: ModelConfig) -> type[nn.Module]:
  """Block, rematerialised as model.remat says."""
  return Block if cfg.remat == 'none' else nn.remat(Block, policy=REMAT_POLICIES[cfg.remat])


class BlockGroup(nn.Module):
  """cfg.layer_period consecutive blocks: one step of the scan over the depth. Every
  group has the same memory pattern, so one set of stacked parameters serves them all."""
  cfg: ModelConfig
  deterministic: bool = True

  @nn.compact
  def __call__(
      self,
      x: jax.Array,  # [B, L, d]: the carry, from group to group
      layers: tuple,  # this group's window keys and values [p, B, H, T, D] and memory
                      # ([m, ...] for its m memory layers, or None)
      start: jax.Array,
      sees_memory: jax.Array,  # [B, L] bool
      mask: jax.Array | None,  # [B, 1, L, T]; None: plain causal (SelfAttention)
  ) -> tuple[jax.Array, tuple]:
    """-> (x, (window keys [p, ...], window values [p, ...], what the memory writes
    read [m, B, L, d] or None))."""
    cfg = self.cfg
    window_keys, window_values, memory = layers
    block = block_class(cfg)
    keys, values, written = [], [], []
    for offset in range(cfg.layer_period):
      has_memory = cfg.has_memory(offset)
      layer_memory = (jax.tree.map(lambda m, i=len(written): m[i], memory)
                      if has_memory else None)
      x, layer_keys, layer_values, layer_written = block(
          cfg, has_memory, self.deterministic, name=f'block_{offset}')(
              x, start, layer_memory, sees_memory, window_keys[offset],
              window_values[offset], mask)
      keys.append(layer_keys)
      values.append(layer_values)
      if has_memory:
        written.append(layer_written)
    return x, (jnp.stack(keys), jnp.stack(values), jnp.stack(written) if written else None)
