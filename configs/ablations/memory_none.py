"""Memory off: nothing crosses a segment boundary (the chance-level control).

One change from configs/synthetic.py. Run: memgpt-train --config=configs/ablations/memory_none.py
--workdir=runs/memory_none; the grid is experiments/ablate.py (make ablate / ablate-quick).
"""

import pathlib

from memgpt_jax.config_lib import load_config


def get_config():
  config = load_config(pathlib.Path(__file__).parents[1] / 'synthetic.py')
  config.model.memory.enabled = False
  return config
