"""Small building blocks shared by the model: initialisers, norms, the MLP.

Every parameter carries logical axis names (nn.with_logical_partitioning), one per
dimension: 'vocab', 'embed' (the model width d), 'heads', 'kv' (per-head features),
'mlp', 'slots', or None. memgpt_jax/parallel maps them onto the device mesh with the
rules of config.mesh.rules; the model's math does not depend on them.
"""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from memgpt_jax.model.config import ModelConfig


def flat_dot_general(lhs: jax.Array, rhs: jax.Array, dimension_numbers, precision=None,
                     preferred_element_type=None) -> jax.Array:
  """A dense layer's dot_general run as one 2-D matmul: [rows, in] x [in, out].

  Inputs [B, L, ..., in] contract their trailing axes with the kernel's leading ones;
  XLA's CPU backend computes the kernel's gradient of that N-D product (a contraction
  over B and L) several times slower than of the same product on [B * L, in] rows
  (6-7x on a 4-layer, d=128 model's step). Other contractions pass through unchanged.
  """
  (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
  count = len(lhs_contract)
  if (lhs_batch or rhs_batch or tuple(rhs_contract) != tuple(range(count))
      or tuple(lhs_contract) != tuple(range(lhs.ndim - count, lhs.ndim))):
    return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                               preferred_element_type=preferred_element_type)
  rows, features = lhs.shape[:lhs.ndim - count], rhs.shape[count:]
  out = jax.lax.dot_general(
      lhs.reshape(math.prod(rows), -1), rhs.reshape(math.prod(rhs.shape[:count]), -1),
      (((1,), (0,)), ((), ())), precision=precision,
      preferred_element_type=preferred_element_type)
  return out.reshape(*rows, *features)


# The model's dense layers: flax's, each product run as one 2-D matmul.
Dense = functools.partial(nn.Dense, dot_general=flat_dot_general)
DenseGeneral = functools.partial(nn.DenseGeneral, dot_general=flat_dot_general)


def default_init(cfg: ModelConfig):
  """Every weight starts at N(0, model.init_std^2) (GPT-2 uses 0.02)."""
  return nn.initializers.normal(stddev=cfg.init_std)


def residual_init(cfg: ModelConfig):
  """Outputs into the residual stream: scaled by 1/sqrt(2L) so its variance stays put."""
  return nn.initializers.normal(stddev=cfg.init_std / (2 * cfg.num_layers) ** 0.5)


@functools.partial(jax.checkpoint, static_argnums=(3, 4))
def normalize(x: jax.Array, scale: jax.Array, bias: jax.Array | None,
              dtype: jnp.dtype, epsilon: float) -> jax.Array:
  """RMSNorm (bias None) or LayerNorm over the last axis, as flax.linen computes them:
  float32 statistics, the output cast to `dtype`. Under jax.checkpoint the backward
  pass keeps only x and recomputes the rest: without it, it keeps three [..., d]
  float32 arrays per norm (x, its normalised value and the scale's product), each
  twice the bytes of a bfloat16 x, written and read back once per layer."""
  x = x.astype(jnp.float32)
  if bias is None:
    mean, variance = 0.0, jnp.mean(jnp.square(x), axis=-1, keepdims=True)
  else:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    variance = jnp.maximum(0.0, jnp.mean(jnp.square(x), axis=-1, keepdims=True)
                           - jnp.square(mean))
  normalised = (x - mean) * (jax.lax.rsqrt(variance + epsilon) * scale)
  return (normalised if bias is None else normalised + bias).astype(dtype)


class Norm(nn.Module):
  """model.norm_type: 'rmsnorm' or 'layernorm' (a bias too), float32 parameters named
  as flax.linen's RMSNorm and LayerNorm name theirs."""
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features = (x.shape[-1],)
    scale = self.param('scale', nn.with_logical_partitioning(
        nn.initializers.ones, ('embed',)), features, jnp.float32)
    bias = None if self.cfg.norm_type == 'rmsnorm' else self.param(
        'bias', nn.with_logical_partitioning(nn.initializers.zeros, ('embed',)), features,
        jnp.float32)
    return normalize(x, scale, bias, self.cfg.compute_dtype, self.cfg.norm_epsilon)


class Mlp(nn.Module):
  """Position-wise feed-forward: SwiGLU (w2(silu(w1 x) * w3 x)) or GELU."""
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cfg = self.cfg
    dense = lambda features, init, axes, name: Dense(
        features, use_bias=cfg.bias == 'all',
        kernel_init=nn.with_logical_partitioning(init, axes),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[1:]),
        dtype=cfg.compute_dtype, name=name)
    up = lambda name: dense(cfg.mlp_dim, default_init(cfg), ('embed', 'mlp'), name)
    if cfg.mlp_type == 'swiglu':
      hidden = swiglu(up('w1')(x), up('w3')(x))
    else:
      hidden = gelu(up('w1')(x))
    return dense(cfg.d_model, residual_init(cfg), ('mlp', 'embed'), 'w2')(hidden)


# The MLP's element-wise activations, recomputed in the backward pass from their
# inputs: otherwise it keeps their internals (sigmoid, silu, tanh), MLP-width arrays
# each as large as the inputs.
swiglu = jax.checkpoint(lambda gate, up: nn.silu(gate) * up)
gelu = jax.checkpoint(nn.gelu)
