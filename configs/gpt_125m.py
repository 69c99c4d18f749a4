"""The 125m GPT and its MemGPT twin (configs/gpt_scale.py says what they are).

Run:     memgpt-train --config=configs/gpt_125m.py --workdir=runs/gpt_125m
         memgpt-train --config=configs/gpt_125m.py:memgpt --workdir=runs/memgpt_125m
Reaches: not trained yet: it needs C4 prepared (configs/c4.py) and an accelerator.
Speed:   its train step, both twins, and MemGPT's decoding on one H200:
         experiments/results/bench_gpu_125m.md
         (make bench BENCH_FLAGS='--config=configs/gpt_125m.py:memgpt ...').
"""

import pathlib

import ml_collections

from memgpt_jax.config_lib import load_config


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """variant: '' (the plain GPT) or 'memgpt'."""
  arg = '125m' + (f',{variant}' if variant else '')
  return load_config(f"{pathlib.Path(__file__).with_name('gpt_scale.py')}:{arg}")
