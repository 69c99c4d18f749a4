"""Causal self-attention over the segment so far, reading the layer's memory.

A query at segment position t sees the segment's tokens of its document at positions
<= t (and, with bidirectional_prefix, every input token of a seq2seq example from any
input token of it), and the memory when it holds the query's document:
- slot memory: the slots are keys beside the window's, in ONE softmax (they have no
  position: with rope their scores use the unrotated query);
- delta memory: each head's output is mixed with its read of the memory
  (model/delta_memory.py, DeltaRead), so the window alone goes through `attend` and
  may take a fused kernel (model.attention). The slot memory's one softmax stays
  spelled out: with rope a slot's score needs the unrotated query, which no fused
  kernel takes beside the rotated one.
Keys and values of the segment live in a [B, H, T, D] window buffer: training writes
the whole segment into an empty buffer at once; decoding writes one token at a time, so
both run the same code and the same mask. Heads lead, as in the score and output
products' batch dimensions: a decoding step reads the window in place, where a
[B, T, H, D] buffer was transposed whole at every token.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.delta_memory import DeltaRead
from memgpt_jax.model.layers import DenseGeneral, default_init, residual_init
from memgpt_jax.model.positions import apply_rope, rope_table


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


def causal_mask(length: int) -> jax.Array:
  """[1, 1, L, L] boolean: query t sees keys 0..t (the mask of window_mask for a whole
  segment of one document with no seq2seq prefix)."""
  return jnp.tril(jnp.ones((length, length), bool))[None, None]


class SelfAttention(nn.Module):
  cfg: ModelConfig

  @nn.compact
  def __call__(
      self,
      x: jax.Array,  # [B, L, d], already normed
      start: jax.Array,  # scalar: segment position of x[:, 0]
      # Slots [B, S, d] (normed), a delta matrix [B, H, d_k, d_v], or None.
      memory: jax.Array | None,
      sees_memory: jax.Array,  # [B, L] bool: whether each query sees the memory
      window_keys: jax.Array,  # [B, H, T, D]
      window_values: jax.Array,  # [B, H, T, D]
      # [B, 1, L, T]: the window keys each query sees; None: plain causality over the
      # whole segment (L = T, one document, no prefix), which a fused kernel runs
      # without materialising a mask.
      mask: jax.Array | None,
  ) -> tuple[jax.Array, jax.Array, jax.Array]:
    cfg = self.cfg
    key_proj, value_proj = _head_projection(cfg, 'key'), _head_projection(cfg, 'value')
    query = _head_projection(cfg, 'query')(x)  # [B, L, H, D]
    key = key_proj(x)
    value = value_proj(x)
    slot_query = query  # slots have no position: they meet the query unrotated
    if cfg.position == 'rope':
      table = rope_table(cfg.segment_len, cfg.head_dim, cfg.rope_base)
      query, key = apply_rope(query, start, table), apply_rope(key, start, table)
    heads_first = lambda x: jnp.swapaxes(x, 1, 2)  # [B, L, H, D] -> [B, H, L, D]
    key, value = heads_first(key), heads_first(value)
    window_keys = jax.lax.dynamic_update_slice_in_dim(
        window_keys, key.astype(window_keys.dtype), start, axis=2)
    window_values = jax.lax.dynamic_update_slice_in_dim(
        window_values, value.astype(window_values.dtype), start, axis=2)
    if x.shape[1] == window_keys.shape[2]:  # the whole segment: the window is its keys,
      keys, values = key, value  # as a fused kernel takes them
    else:
      keys, values = window_keys, window_values
    keys, values = keys.astype(query.dtype), values.astype(query.dtype)
    if memory is None or cfg.memory_kind == 'delta':
      out = attend(query, keys, values, mask, cfg.attention)
    else:
      if mask is None:
        length = keys.shape[2]
        mask = jnp.broadcast_to(causal_mask(length), (x.shape[0], 1, length, length))
      slot_mask = jnp.broadcast_to(sees_memory[:, None, :, None],
                                   (*mask.shape[:3], memory.shape[1]))
      out = _attend_slots_and_window(slot_query, heads_first(key_proj(memory)),
                                     heads_first(value_proj(memory)), slot_mask, query,
                                     keys, values, mask)
    if memory is not None and cfg.memory_kind == 'delta':
      out = DeltaRead(cfg, name='memory_read')(x, memory, sees_memory, out)
    out = _output_projection(cfg, 'out')(out)
    return out, window_keys, window_values


def _head_projection(cfg: ModelConfig, name: str) -> nn.Module:
  """d -> (heads, head_dim), as the attention's query, key and value."""
  return DenseGeneral(
      (cfg.num_heads, cfg.head_dim), use_bias=cfg.bias != 'none',
      kernel_init=nn.with_logical_partitioning(default_init(cfg), ('embed', 'heads', 'kv')),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ('heads', 'kv')),
      dtype=cfg.compute_dtype, name=name)


def _output_projection(cfg: ModelConfig, name: str) -> nn.Module:
  """(heads, head_dim) -> d, into the residual stream."""
  return DenseGeneral(
      cfg.d_model, axis=(-2, -1), use_bias=cfg.bias == 'all',
      kernel_init=nn.with_logical_partitioning(residual_init(cfg), ('heads', 'kv', 'embed')),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ('embed',)),
      dtype=cfg.compute_dtype, name=name)


class SourceKeysValues(nn.Module):
  """One decoder layer's cross-attention keys and values of the encoder's outputs:
  computed once per source (by training's forward pass and by decoding alike), not
  once per target segment or token."""
  cfg: ModelConfig

  @nn.compact
  def __call__(self, encoded: jax.Array) -> tuple[jax.Array, jax.Array]:
    """encoded [B, S, d] -> (keys, values), each [B, H, S, D]."""
    heads_first = lambda x: jnp.swapaxes(x, 1, 2)
    return (heads_first(_head_projection(self.cfg, 'key')(encoded)),
            heads_first(_head_projection(self.cfg, 'value')(encoded)))


class CrossAttention(nn.Module):
  """The decoder's attention to the encoder's outputs of its own example (no
  positions: the source's order is in what the encoder wrote)."""
  cfg: ModelConfig

  @nn.compact
  def __call__(
      self,
      x: jax.Array,  # [B, L, d], already normed
      keys: jax.Array,  # [B, H, S, D] (SourceKeysValues)
      values: jax.Array,  # [B, H, S, D]
      mask: jax.Array,  # [B, 1, L, S]: the source positions of each query's example
  ) -> jax.Array:
    query = _head_projection(self.cfg, 'query')(x)
    out = attend(query, keys.astype(query.dtype), values.astype(query.dtype), mask,
                 self.cfg.attention)
    return _output_projection(self.cfg, 'out')(out)


def attend(
    query: jax.Array,  # [B, L, H, D]
    keys: jax.Array,  # [B, H, T, D]
    values: jax.Array,  # [B, H, T, D]
    mask: jax.Array | None,  # [B, 1, L, T]; None: causal, L = T
    implementation: str,  # model.attention
) -> jax.Array:
  """softmax(q k^T / sqrt(D)) v over the keys each query sees: -> [B, L, H, D].

  'fused' is jax.nn.dot_product_attention: cuDNN's flash-attention kernel on a GPU
  (16-bit inputs only), XLA's composition elsewhere. A plain causal mask (None) is
  the kernel's own causal mode; any other goes in as an additive bias, whose gradient
  jax's cuDNN wrapper computes too, unused. 'einsum' spells it out: the faster on a
  CPU (experiments/results/bench_cpu_fast_paths.md), and for a decoding step's single
  query, a matrix-vector product no kernel speeds up. 'auto' takes 'fused' on a GPU
  for 16-bit queries of more than one token, 'einsum' otherwise.
  """
  on_gpu = jax.default_backend() == 'gpu'
  if implementation == 'auto':
    fusable = on_gpu and query.dtype in (jnp.bfloat16, jnp.float16) and query.shape[1] > 1
    implementation = 'fused' if fusable else 'einsum'
  if implementation == 'fused':
    return jax.nn.dot_product_attention(  # its layout: [B, T, H, D]
        query, jnp.swapaxes(keys, 1, 2), jnp.swapaxes(values, 1, 2), mask=mask,
        is_causal=mask is None, implementation='cudnn' if on_gpu else 'xla')
  if mask is None:
    mask = causal_mask(keys.shape[2])
  logits = jnp.einsum('blhd,bhtd->bhlt', query, keys).astype(jnp.float32)
  logits = jnp.where(mask, logits / jnp.sqrt(jnp.float32(query.shape[-1])), -1e30)
  return _softmax_mix(logits, values)


def _softmax_mix(
    logits: jax.Array,  # [B, H, L, K] float32, masked
    values: jax.Array,  # [B, H, K, D]
) -> jax.Array:
  """softmax(logits) values -> [B, L, H, D], normalised after the product: the
  division runs over [B, L, H, D], not over the [B, H, L, K] weights, a pass over the
  scores fewer (on a CPU the default plain GPT's step, 512 keys per query, went from
  626 to 556 ms; the default MemGPT's division from 24 to 7 of its ~900 thread-ms)."""
  # Any shift leaves the result unchanged, so the max needs no gradient.
  weights = jnp.exp(logits - jax.lax.stop_gradient(logits.max(axis=-1, keepdims=True)))
  mixed = jnp.einsum('bhlk,bhkd->blhd', weights.astype(values.dtype), values)
  total = jnp.swapaxes(weights.sum(axis=-1), 1, 2)[..., None]  # [B, L, H, 1]
  return (mixed / total).astype(values.dtype)


def _attend_slots_and_window(
    slot_query: jax.Array,  # [B, L, H, D], not rotated
    slot_keys: jax.Array,  # [B, H, S, D]
    slot_values: jax.Array,  # [B, H, S, D]
    slot_mask: jax.Array,  # [B, 1, L, S]
    query: jax.Array,  # [B, L, H, D], rotated with rope
    keys: jax.Array,  # [B, H, T, D]
    values: jax.Array,  # [B, H, T, D]
    mask: jax.Array,  # [B, 1, L, T]
) -> jax.Array:
  """One softmax over [slots ; window]. With rope a slot's score uses the unrotated
  query, so a content match with the memory does not depend on where in the segment
  the query sits (as if every slot sat at the query's own position). -> [B, L, H, D]"""
  logits = jnp.concatenate([jnp.einsum('blhd,bhsd->bhls', slot_query, slot_keys),
                            jnp.einsum('blhd,bhtd->bhlt', query, keys)], axis=-1)
  logits = logits.astype(jnp.float32) / jnp.sqrt(jnp.float32(query.shape[-1]))
  logits = jnp.where(jnp.concatenate([slot_mask, mask], axis=-1), logits, -1e30)
  return _softmax_mix(logits, jnp.concatenate([slot_values, values], axis=2))
