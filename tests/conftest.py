"""Shared fixtures: tiny model configs that compile in seconds on a 2-core CPU."""

import pathlib

import flax.linen as nn
import jax
import ml_collections
import pytest

from memgpt_jax import config_lib
from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.transformer import MemGPT

ROOT = pathlib.Path(__file__).resolve().parents[1]
VOCAB = 64


def load_config(name: str = 'tiny') -> ml_collections.ConfigDict:
  """configs/<name>.py's get_config(), loaded the way the CLI loads it (by path)."""
  return config_lib.load_config(ROOT / 'configs' / f'{name}.py')


def tiny_model(vocab_size: int = VOCAB, **overrides) -> tuple[MemGPT, ModelConfig]:
  """configs/tiny.py's model with dotted overrides, e.g. {'memory.enabled': False}."""
  model_config = load_config('tiny').model
  for key, value in overrides.items():
    node = model_config
    *parents, leaf = key.split('.')
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  cfg = ModelConfig.from_config(model_config, vocab_size)
  return MemGPT(cfg), cfg


def init_params(model: MemGPT, batch_size: int = 2, seed: int = 0):
  """{'params': ...} as plain arrays (init boxes them with their logical axis names)."""
  tokens = jax.numpy.zeros((batch_size, model.cfg.seq_len), jax.numpy.int32)
  return nn.unbox(model.init(jax.random.key(seed), tokens))


@pytest.fixture(scope='session')
def memgpt():
  """The tiny MemGPT (memory + pointer on) and its parameters."""
  model, _ = tiny_model()
  return model, init_params(model)
