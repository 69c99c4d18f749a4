"""Models compared at equal parameters: a part switched off, or another architecture,
is paid for in MLP units (model.mlp_dim)."""

import math

import jax

from memgpt_jax.data.tokenizer import make_tokenizer
from memgpt_jax.training import checkpointing

# (model settings as JSON, vocabulary size) -> parameters: tracing a model takes
# seconds, and a grid counts the same few models many times.
_COUNTED: dict[tuple[str, int], int] = {}


def count_params(config) -> int:
  """The parameters of the model `config` builds (traced, nothing allocated)."""
  vocab_size = make_tokenizer(config.data).vocab_size
  key = (config.model.to_json_best_effort(sort_keys=True), vocab_size)
  if key not in _COUNTED:
    _, shapes = checkpointing.abstract_params(config, vocab_size)
    _COUNTED[key] = sum(math.prod(x.shape) for x in jax.tree.leaves(shapes))
  return _COUNTED[key]


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
