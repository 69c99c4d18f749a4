"""The TFDS builder behind the built-in seq2seq tasks: (inputs, targets) pairs that a
pure function makes from (settings, split, index), so every machine builds the same
data and nothing is downloaded. A task subclasses GeneratedPairs with its
`make_example(settings, split, index)` and the integer settings it reads."""

import dataclasses
import hashlib
import json
from collections.abc import Callable

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from memgpt_jax.data.errors import DataError

SPLITS = ('train', 'validation', 'test')


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
  """The random stream of one example: a function of (seed, split, index) alone."""
  return np.random.default_rng([seed, SPLITS.index(split), index])


@dataclasses.dataclass(eq=False)
class PairsConfig(tfds.core.BuilderConfig):
  settings: dict = dataclasses.field(default_factory=dict)


class GeneratedPairs(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Generated (inputs, targets) pairs: train, validation, test."""

  VERSION = tfds.core.Version('1.0.0')
  # (setting name, smallest value) of data.task that the examples read, besides
  # seed, num_train and num_eval.
  TASK_SETTINGS: tuple[tuple[str, int], ...] = ()
  make_example: Callable[[dict, str, int], dict[str, str]]

  @classmethod
  def from_task(cls, task: ml_collections.ConfigDict, **kwargs) -> 'GeneratedPairs':
    """The builder of data.task's settings, named after them, so that changing one
    builds the data again."""
    settings = {'seed': int(task.seed)}
    for key, smallest in (('num_train', 1), ('num_eval', 1), *cls.TASK_SETTINGS):
      settings[key] = int(task[key])
      if settings[key] < smallest:
        raise DataError(f'data.task.{key}={settings[key]} must be at least {smallest}')
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return cls(config=PairsConfig(name=f'{cls.name}_{digest}', settings=settings,
                                  description=f'{cls.name} {settings}'), **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    features = tfds.features.FeaturesDict({'inputs': tfds.features.Text(),
                                           'targets': tfds.features.Text()})
    return tfds.core.DatasetInfo(builder=self, features=features, disable_shuffling=True)

  def _split_generators(self, dl_manager):
    del dl_manager  # Generated locally.
    return {split: self._generate_examples(split) for split in SPLITS}

  def _generate_examples(self, split: str):
    settings = self.builder_config.settings
    size = settings['num_train'] if split == 'train' else settings['num_eval']
    for index in range(size):
      yield index, type(self).make_example(settings, split, index)
