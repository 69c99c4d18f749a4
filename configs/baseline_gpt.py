"""The plain GPT baseline: the default model with memory and pointer off and K = 1.

Same width, depth, heads, MLP, data, batch and steps as configs/default.py; its one
segment is the whole example (T = N = 512), so it attends over all of it.

Run:     memgpt-train --config=configs/baseline_gpt.py --workdir=runs/baseline_gpt
Reaches: with its MLP widened to the delta MemGPT's parameters (ablate.py --grid=text),
         validation 3.49 +- 0.15 bits per byte after 300 steps over three seeds, against
         MemGPT's 3.04 (experiments/results/text.md).
"""

import pathlib

from memgpt_jax.config_lib import load_config, plain_gpt


def get_config():
  return plain_gpt(load_config(pathlib.Path(__file__).with_name('default.py')))
