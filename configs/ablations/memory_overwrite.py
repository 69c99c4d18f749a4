"""Memory with no gate: every segment overwrites it.

One change from configs/synthetic.py. Run: memgpt-train --config=configs/ablations/memory_overwrite.py
--workdir=runs/memory_overwrite; the grid is experiments/ablate.py (make ablate / ablate-quick).
"""

import pathlib

from memgpt_jax.config_lib import load_config


def get_config():
  config = load_config(pathlib.Path(__file__).parents[1] / 'synthetic.py')
  config.model.memory.gate = 'none'
  return config
