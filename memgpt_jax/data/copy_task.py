"""A built-in seq2seq task that needs copying: summarise a generated report.

The source names a trade between two people and adds distractor sentences about
others; the summary repeats the trade with its names and number:

  inputs:  'Day 41. Lomi Vastrek met Oru Pelnid. Tessa Qurimbel sold 387 goats to
            Dovan Hurlet. It rained in Sorvan.'
  targets: 'Tessa Qurimbel sold 387 goats to Dovan Hurlet.'

Names and numbers are drawn at random from syllables and digits, so they are rare:
a model must copy them from the source (what the pointer is for) rather than
remember them. Every example depends only on (seed, split, index).
"""

import dataclasses
import hashlib
import json

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from memgpt_jax.data.errors import DataError

SOURCE = 'copy_summary'
_SPLITS = ('train', 'validation', 'test')
_ONSETS = ('b', 'd', 'f', 'g', 'h', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'z',
           'br', 'dr', 'kr', 'st', 'th', 'qu')
_VOWELS = ('a', 'e', 'i', 'o', 'u', 'ai', 'ea', 'ou')
_CODAS = ('', '', 'n', 'r', 'l', 'k', 's', 'th', 'm')
_GOODS = ('goats', 'sheep', 'barrels of salt', 'bolts of cloth', 'lamps', 'horses')
_DISTRACTORS = ('{a} met {b}.', 'It rained in {p}.', '{a} walked to {p}.',
                '{a} and {b} argued about the weather.', 'The market in {p} was busy.')


def _word(rng: np.random.Generator, syllables: int) -> str:
  parts = [str(rng.choice(_ONSETS)) + str(rng.choice(_VOWELS)) for _ in range(syllables)]
  return (''.join(parts) + str(rng.choice(_CODAS))).capitalize()


def _name(rng: np.random.Generator) -> str:
  return f'{_word(rng, 1 + int(rng.integers(2)))} {_word(rng, 2 + int(rng.integers(2)))}'


def make_example(seed: int, split: str, index: int,
                 num_distractors: int = 2) -> dict[str, str]:
  """One (inputs, targets) pair; the trade sits among `num_distractors` other sentences."""
  rng = np.random.default_rng([seed, _SPLITS.index(split), index])
  seller, buyer = _name(rng), _name(rng)
  trade = (f'{seller} sold {int(rng.integers(2, 10_000))} {rng.choice(_GOODS)} '
           f'to {buyer}.')
  sentences = [str(rng.choice(_DISTRACTORS)).format(a=_name(rng), b=_name(rng),
                                                    p=_word(rng, 2))
               for _ in range(num_distractors)]
  sentences.insert(int(rng.integers(num_distractors + 1)), trade)
  return {'inputs': f'Day {int(rng.integers(1, 100))}. ' + ' '.join(sentences),
          'targets': trade}


@dataclasses.dataclass(eq=False)
class CopySummaryConfig(tfds.core.BuilderConfig):
  settings: dict = dataclasses.field(default_factory=dict)


def builder_config(task: ml_collections.ConfigDict) -> CopySummaryConfig:
  """Named after the settings, so changing one rebuilds the data."""
  settings = {'seed': int(task.seed), 'num_train': int(task.num_train),
              'num_eval': int(task.num_eval), 'num_distractors': int(task.num_distractors)}
  for key in ('num_train', 'num_eval'):
    if settings[key] < 1:
      raise DataError(f'data.task.{key}={settings[key]} must be at least 1')
  if settings['num_distractors'] < 0:
    raise DataError(f'data.task.num_distractors={settings["num_distractors"]} must be >= 0')
  digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
  return CopySummaryConfig(name=f'{SOURCE}_{digest}', settings=settings,
                           description=f'copy summary {settings}')


class CopySummary(tfds.core.GeneratorBasedBuilder):
  """Generated reports and their one-sentence summaries: train, validation, test."""

  VERSION = tfds.core.Version('1.0.0')

  def _info(self) -> tfds.core.DatasetInfo:
    features = tfds.features.FeaturesDict({'inputs': tfds.features.Text(),
                                           'targets': tfds.features.Text()})
    return tfds.core.DatasetInfo(builder=self, features=features, disable_shuffling=True)

  def _split_generators(self, dl_manager):
    del dl_manager  # Generated locally.
    return {split: self._generate_examples(split) for split in _SPLITS}

  def _generate_examples(self, split: str):
    s = self.builder_config.settings
    size = s['num_train'] if split == 'train' else s['num_eval']
    for index in range(size):
      yield index, make_example(s['seed'], split, index, s['num_distractors'])
