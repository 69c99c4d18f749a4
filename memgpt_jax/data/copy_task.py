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

import numpy as np

from memgpt_jax.data.generated_pairs import GeneratedPairs, example_rng

SOURCE = 'copy_summary'
_ONSETS = ('b', 'd', 'f', 'g', 'h', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'z',
           'br', 'dr', 'kr', 'st', 'th', 'qu')
_VOWELS = ('a', 'e', 'i', 'o', 'u', 'ai', 'ea', 'ou')
_CODAS = ('', '', 'n', 'r', 'l', 'k', 's', 'th', 'm')
_GOODS = ('goats', 'sheep', 'barrels of salt', 'bolts of cloth', 'lamps', 'horses')
_DISTRACTORS = ('{a} met {b}.', 'It rained in {p}.', '{a} walked to {p}.',
                '{a} and {b} argued about the weather.', 'The market in {p} was busy.')


def rare_word(rng: np.random.Generator, syllables: int) -> str:
  """A made-up word of `syllables` syllables, capitalised: almost never seen twice."""
  parts = [str(rng.choice(_ONSETS)) + str(rng.choice(_VOWELS)) for _ in range(syllables)]
  return (''.join(parts) + str(rng.choice(_CODAS))).capitalize()


def _name(rng: np.random.Generator) -> str:
  return f'{rare_word(rng, 1 + int(rng.integers(2)))} {rare_word(rng, 2 + int(rng.integers(2)))}'


def make_example(seed: int, split: str, index: int,
                 num_distractors: int = 2) -> dict[str, str]:
  """One (inputs, targets) pair; the trade sits among `num_distractors` other sentences."""
  rng = example_rng(seed, split, index)
  seller, buyer = _name(rng), _name(rng)
  trade = (f'{seller} sold {int(rng.integers(2, 10_000))} {rng.choice(_GOODS)} '
           f'to {buyer}.')
  sentences = [str(rng.choice(_DISTRACTORS)).format(a=_name(rng), b=_name(rng),
                                                    p=rare_word(rng, 2))
               for _ in range(num_distractors)]
  sentences.insert(int(rng.integers(num_distractors + 1)), trade)
  return {'inputs': f'Day {int(rng.integers(1, 100))}. ' + ' '.join(sentences),
          'targets': trade}


class CopySummary(GeneratedPairs):
  """Generated reports and their one-sentence summaries."""

  TASK_SETTINGS = (('num_distractors', 0),)

  @staticmethod
  def make_example(settings: dict, split: str, index: int) -> dict[str, str]:
    return make_example(settings['seed'], split, index, settings['num_distractors'])
