"""Causal self-attention whose keys are [memory slots ; tokens of the segment so far].

One softmax covers both: a query at segment position t sees the memory slots (they
hold only the past) when they hold its document, and the segment's tokens of its
document at positions <= t (and, with bidirectional_prefix, every input token of a
seq2seq example from any input token of it). Keys and values of the segment live in a
[B, T, H, D] window buffer: training writes the whole segment into an empty buffer at
once; decoding writes one token at a time, so both run the same code and the same mask.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.layers import default_init, residual_init
from memgpt_jax.model.positions import apply_rope


def window_mask(
    start: jax.Array,  # scalar: segment position of the first query
    query_docs: jax.Array,  # [B, L] int32
    query_prefix: jax.Array,  # [B, L] bool
    key_docs: jax.Array,  # [B, T] int32, the window buffer
    key_prefix: jax.Array,  # [B, T] bool
    bidirectional_prefix: bool,
) -> jax.Array:
  """[B, 1, L, T] boolean: which window keys each query at start..start+L-1 sees."""
  query_pos = start + jnp.arange(query_docs.shape[1])
  visible = jnp.arange(key_docs.shape[1])[None, :] <= query_pos[:, None]  # [L, T]
  if bidirectional_prefix:
    visible = visible | (query_prefix[:, :, None] & key_prefix[:, None, :])
  same_doc = query_docs[:, :, None] == key_docs[:, None, :]
  return (visible & same_doc)[:, None]


class SelfAttention(nn.Module):
  cfg: ModelConfig

  @nn.compact
  def __call__(
      self,
      x: jax.Array,  # [B, L, d], already normed
      start: jax.Array,  # scalar: segment position of x[:, 0]
      memory: jax.Array | None,  # [B, S, d], normed, or None without memory
      window_keys: jax.Array,  # [B, T, H, D]
      window_values: jax.Array,  # [B, T, H, D]
      mask: jax.Array,  # [B, 1, L, T]: the window keys each query sees
      slot_mask: jax.Array,  # [B, 1, L, S]: whether each query sees the memory
  ) -> tuple[jax.Array, jax.Array, jax.Array]:
    cfg = self.cfg
    projection = lambda name: nn.DenseGeneral(
        (cfg.num_heads, cfg.head_dim), use_bias=False,
        kernel_init=nn.with_logical_partitioning(default_init, ('embed', 'heads', 'kv')),
        dtype=cfg.compute_dtype, name=name)
    length = x.shape[1]
    positions = start + jnp.arange(length)
    key_proj, value_proj = projection('key'), projection('value')
    query = projection('query')(x)  # [B, L, H, D]
    key = key_proj(x)
    value = value_proj(x)
    if cfg.position == 'rope':
      query = apply_rope(query, positions, cfg.rope_base)
      key = apply_rope(key, positions, cfg.rope_base)
    window_keys = jax.lax.dynamic_update_slice_in_dim(
        window_keys, key.astype(window_keys.dtype), start, axis=1)
    window_values = jax.lax.dynamic_update_slice_in_dim(
        window_values, value.astype(window_values.dtype), start, axis=1)
    keys, values = window_keys, window_values
    if memory is not None:  # slots have no position: their keys are not rotated
      keys = jnp.concatenate([key_proj(memory).astype(keys.dtype), keys], axis=1)
      values = jnp.concatenate([value_proj(memory).astype(values.dtype), values], axis=1)
      mask = jnp.concatenate([slot_mask, mask], axis=-1)
    out = jax.nn.dot_product_attention(
        query, keys.astype(query.dtype), values.astype(query.dtype), mask=mask)
    out = nn.DenseGeneral(
        cfg.d_model, axis=(-2, -1), use_bias=False,
        kernel_init=nn.with_logical_partitioning(residual_init(cfg), ('heads', 'kv', 'embed')),
        dtype=cfg.compute_dtype, name='out')(out)
    return out, window_keys, window_values
