"""The plain GPT baseline: the default model with memory and pointer off and K = 1.

Same width, depth, heads, MLP, data, batch and steps as configs/default.py; its one
segment is the whole example (T = N = 512), so it attends over all of it.

Run:     memgpt-train --config=configs/baseline_gpt.py --workdir=runs/baseline_gpt
Reaches: validation 3.14 bits per byte, 43% next-byte accuracy after 500 steps (MemGPT
         with the same steps and tokens: 2.39).
"""

import pathlib

from memgpt_jax.config_lib import load_config, plain_gpt


def get_config():
  return plain_gpt(load_config(pathlib.Path(__file__).with_name('default.py')))
