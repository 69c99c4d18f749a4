"""Models compared at equal parameters: a part switched off, or another architecture,
is paid for in MLP units (model.mlp_dim)."""

import math

import jax

from memgpt_jax.data.tokenizer import make_tokenizer
from memgpt_jax.training import checkpointing


def count_params(config) -> int:
  """The parameters of the model `config` builds (traced, nothing allocated)."""
  _, shapes = checkpointing.abstract_params(config, make_tokenizer(config.data).vocab_size)
  return sum(math.prod(x.shape) for x in jax.tree.leaves(shapes))


def with_params(config, target: int):
  """`config` with model.mlp_dim set so the model has about `target` parameters."""
  def count(mlp_dim: int) -> int:
    resized = config.copy_and_resolve_references()
    resized.model.mlp_dim = mlp_dim
    return count_params(resized)
  base = config.model.mlp_dim
  low, high = count(base), count(2 * base)  # the count is linear in mlp_dim
  config.model.mlp_dim = max(1, round(base + (target - low) * base / (high - low)))
  return config
