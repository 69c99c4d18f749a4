"""S = 128 memory slots per layer.

One change from configs/synthetic.py. Run: memgpt-train --config=configs/ablations/slots_128.py
--workdir=runs/slots_128; the grid is experiments/ablate.py (make ablate / ablate-quick).
"""

import pathlib

from memgpt_jax.config_lib import load_config


def get_config():
  config = load_config(pathlib.Path(__file__).parents[1] / 'synthetic.py')
  config.model.memory.num_slots = 128
  return config
