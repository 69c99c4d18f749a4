"""configs/copy_summary.py's model on the built-in translation task
(memgpt_jax/data/translation_task.py): sentences of a small English-like grammar into a
made-up language of another word order, names copied from the source.

Run:     memgpt-train --config=configs/toy_translation.py --workdir=runs/toy_translation
         memgpt-sample --workdir=runs/toy_translation --inputs='the old farmer sees Vashel .'

Two sentences a source (about 100 bytes) and their translation fit one segment of 256
tokens; data.task.num_sentences makes the sources longer.
"""

import pathlib

import ml_collections

from memgpt_jax.config_lib import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(pathlib.Path(__file__).with_name('copy_summary.py'))
  data = config.data
  data.source = 'toy_translation'
  data.task_metrics = 'translation'
  data.task = ml_collections.ConfigDict()
  data.task.seed = 0
  data.task.num_train = 20_000
  data.task.num_eval = 256
  data.task.num_sentences = 2
  config.sample.prompt = 'the tired teacher finds Morvel near a quiet river .'
  return config
