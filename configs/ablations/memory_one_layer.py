"""Memory in the last layer only.

One change from configs/synthetic.py. Run: memgpt-train --config=configs/ablations/memory_one_layer.py
--workdir=runs/memory_one_layer; the grid is experiments/ablate.py (make ablate / ablate-quick).
"""

import pathlib

from memgpt_jax.config_lib import load_config


def get_config():
  config = load_config(pathlib.Path(__file__).parents[1] / 'synthetic.py')
  config.model.memory.layers = '1'
  return config
