"""The slot memory's gated write for one layer (model.memory.kind='slots'; the read is
in attention.py).

After a layer has processed a segment, the slots point at the segment's tokens of
the document that goes on into the next segment (its last token's document):

    U   = CrossAttention(queries = W_q norm(M), keys/values = norm(h) of that document)
    M'  = g * M + (1 - g) * U

where M is the learned initial memory instead if it held another document: the
memory resets at a document boundary.

with the gate g one of
    fixed: g = sigmoid(b), b a learned [d] vector starting at gate_bias_init (> 0:
           memory starts "sticky");
    gru:   g = sigmoid(W_g [M ; U] + b), input dependent;
    none:  g = 0, the write overwrites.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.layers import Dense, DenseGeneral, Norm, default_init, residual_init


class SlotMemory(nn.Module):
  cfg: ModelConfig

  def setup(self):
    cfg = self.cfg
    self.initial = self.param(
        'initial', nn.with_logical_partitioning(default_init(cfg), ('slots', 'embed')),
        (cfg.slots.num_slots, cfg.d_model))
    self.memory_norm = Norm(cfg)
    self.hidden_norm = Norm(cfg)
    projection = lambda: DenseGeneral(
        (cfg.num_heads, cfg.head_dim), use_bias=False,
        kernel_init=nn.with_logical_partitioning(default_init(cfg), ('embed', 'heads', 'kv')),
        dtype=cfg.compute_dtype)
    self.query, self.key, self.value = projection(), projection(), projection()
    self.out = DenseGeneral(
        cfg.d_model, axis=(-2, -1), use_bias=False,
        kernel_init=nn.with_logical_partitioning(residual_init(cfg), ('heads', 'kv', 'embed')),
        dtype=cfg.compute_dtype)
    bias_init = nn.with_logical_partitioning(
        nn.initializers.constant(cfg.slots.gate_bias_init), ('embed',))
    if cfg.slots.gate == 'fixed':
      self.gate_bias = self.param('gate_bias', bias_init, (cfg.d_model,))
    elif cfg.slots.gate == 'gru':  # [M ; U] (2d) -> d: the input side stays whole
      self.gate = Dense(
          cfg.d_model, kernel_init=nn.with_logical_partitioning(default_init(cfg), (None, 'embed')),
          bias_init=bias_init)

  def initial_state(self, batch_size: int) -> jax.Array:
    """The learned start of every example: [B, S, d], float32."""
    return jnp.broadcast_to(self.initial, (batch_size, *self.initial.shape))

  def __call__(
      self,
      memory: jax.Array,  # [B, S, d] float32
      hiddens: jax.Array,  # [B, T, d]: the layer's outputs over the segment
      written: jax.Array,  # [B, T] bool: the tokens to write (never all False)
      continues: jax.Array,  # [B] bool: False resets the memory before the write
  ) -> jax.Array:
    """-> the new memory [B, S, d] float32."""
    memory = jnp.where(continues[:, None, None], memory, self.initial_state(memory.shape[0]))
    query = self.query(self.memory_norm(memory))  # [B, S, H, D]
    normed = self.hidden_norm(hiddens)
    update = jax.nn.dot_product_attention(query, self.key(normed), self.value(normed),
                                          mask=written[:, None, None, :])
    update = self.out(update).astype(jnp.float32)  # [B, S, d]
    if self.cfg.slots.gate == 'none':
      return update
    if self.cfg.slots.gate == 'fixed':
      keep = jax.nn.sigmoid(self.gate_bias)
    else:
      keep = jax.nn.sigmoid(self.gate(jnp.concatenate([memory, update], axis=-1)))
    return keep * memory + (1.0 - keep) * update
