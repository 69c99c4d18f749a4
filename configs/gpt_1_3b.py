"""The 1.3b GPT and its MemGPT twin (configs/gpt_scale.py says what they are).

Run:     memgpt-train --config=configs/gpt_1_3b.py --workdir=runs/gpt_1_3b
         memgpt-train --config=configs/gpt_1_3b.py:memgpt --workdir=runs/memgpt_1_3b
Reaches: not trained yet: it needs C4 prepared (configs/c4.py) and an accelerator.
Speed:   its train step, both twins, on one H200:
         experiments/results/bench_gpu_1_3b_profile.md
         (make bench BENCH_FLAGS='--config=configs/gpt_1_3b.py:memgpt ...').
"""

import pathlib

import ml_collections

from memgpt_jax.config_lib import load_config


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """variant: '' (the plain GPT) or 'memgpt'."""
  arg = '1_3b' + (f',{variant}' if variant else '')
  return load_config(f"{pathlib.Path(__file__).with_name('gpt_scale.py')}:{arg}")
