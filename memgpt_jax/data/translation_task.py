"""A built-in seq2seq task that needs reordering as well as copying: translate
sentences of a small English-like grammar into a made-up language of another word
order.

  inputs:  'the old farmer sees the red fox near Vashel . Brenti carries a lamp .'
  targets: 'tolim vesa ka Vashel ne vashu rudo ma sendi . Brenti ka lampo ma kouri .'

The source is subject-verb-object with adjectives before their nouns and
prepositions; the target is subject-object-verb with adjectives after their nouns,
postpositions, and case markers ('ka' after the subject, 'ma' after the object).
Every common word has one translation in a fixed lexicon; names are made-up words
drawn afresh for every example, so they must be copied from the source (what the
pointer is for). data.task.num_sentences sets the source's length. Every example
depends only on (seed, split, index).
"""

import numpy as np

from memgpt_jax.data.copy_task import rare_word
from memgpt_jax.data.generated_pairs import GeneratedPairs, example_rng

SOURCE = 'toy_translation'
NOUNS = {'farmer': 'tolim', 'fox': 'vashu', 'lamp': 'lampo', 'river': 'siran',
         'child': 'meku', 'boat': 'nalo', 'bird': 'pirra', 'stone': 'goda',
         'teacher': 'darvo', 'horse': 'kelun'}
ADJECTIVES = {'old': 'vesa', 'red': 'rudo', 'small': 'tiki', 'quiet': 'solum',
              'bright': 'lumi', 'tired': 'fessa'}
VERBS = {'sees': 'sendi', 'carries': 'kouri', 'follows': 'sekra', 'finds': 'trova',
         'paints': 'pinta', 'helps': 'aida'}
PREPOSITIONS = {'near': 'ne', 'behind': 'bo', 'under': 'su', 'with': 'mi'}
SUBJECT, OBJECT = 'ka', 'ma'


def _noun_phrase(rng: np.random.Generator) -> tuple[list[str], list[str]]:
  """(source words, target words) of a name (a third of the time) or a noun with
  its article and, half of the time, an adjective."""
  if rng.random() < 1 / 3:
    name = rare_word(rng, 2)
    return [name], [name]
  noun = str(rng.choice(list(NOUNS)))
  article = str(rng.choice(['the', 'a']))
  words, target = [noun], [NOUNS[noun]]
  if rng.random() < 0.5:
    adjective = str(rng.choice(list(ADJECTIVES)))
    words, target = [adjective, noun], [NOUNS[noun], ADJECTIVES[adjective]]
  if article == 'a' and words[0][0] in 'aeiou':
    article = 'an'
  return [article, *words], target


def sentence(rng: np.random.Generator) -> tuple[str, str]:
  """One (source, target) sentence: S V O [P NP] -> S ka [NP P] O ma V."""
  subject, subject_target = _noun_phrase(rng)
  obj, obj_target = _noun_phrase(rng)
  verb = str(rng.choice(list(VERBS)))
  source, target = [*subject, verb, *obj], [*subject_target, SUBJECT]
  if rng.random() < 0.5:
    preposition = str(rng.choice(list(PREPOSITIONS)))
    place, place_target = _noun_phrase(rng)
    source += [preposition, *place]
    target += [*place_target, PREPOSITIONS[preposition]]
  target += [*obj_target, OBJECT, VERBS[verb]]
  return ' '.join(source + ['.']), ' '.join(target + ['.'])


def make_example(seed: int, split: str, index: int, num_sentences: int = 2) -> dict[str, str]:
  rng = example_rng(seed, split, index)
  pairs = [sentence(rng) for _ in range(num_sentences)]
  return {'inputs': ' '.join(source for source, _ in pairs),
          'targets': ' '.join(target for _, target in pairs)}


class ToyTranslation(GeneratedPairs):
  """Generated sentences and their translations into the made-up language."""

  TASK_SETTINGS = (('num_sentences', 1),)

  @staticmethod
  def make_example(settings: dict, split: str, index: int) -> dict[str, str]:
    return make_example(settings['seed'], split, index, settings['num_sentences'])
