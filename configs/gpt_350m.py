"""The 350m GPT and its MemGPT twin (configs/gpt_scale.py says what they are).

Run:     memgpt-train --config=configs/gpt_350m.py --workdir=runs/gpt_350m
         memgpt-train --config=configs/gpt_350m.py:memgpt --workdir=runs/memgpt_350m
Reaches: not trained yet: it needs C4 prepared (configs/c4.py) and an accelerator.
Speed:   its train step, both twins, on one H200: experiments/results/bench_gpu_350m.md
         (make bench BENCH_FLAGS='--config=configs/gpt_350m.py:memgpt ...').
"""

import pathlib

import ml_collections

from memgpt_jax.config_lib import load_config


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """variant: '' (the plain GPT) or 'memgpt'."""
  arg = '350m' + (f',{variant}' if variant else '')
  return load_config(f"{pathlib.Path(__file__).with_name('gpt_scale.py')}:{arg}")
