"""Pointer heads on.

One change from configs/synthetic.py. Run: memgpt-train --config=configs/ablations/pointer_on.py
--workdir=runs/pointer_on; the grid is experiments/ablate.py (make ablate / ablate-quick).
"""

import pathlib

from memgpt_jax.config_lib import load_config


def get_config():
  config = load_config(pathlib.Path(__file__).parents[1] / 'synthetic.py')
  config.model.pointer.enabled = True
  return config
