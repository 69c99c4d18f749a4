"""Back-propagation through the memory across all K segments.

One change from configs/synthetic.py. Run: memgpt-train --config=configs/ablations/bptt_full.py
--workdir=runs/bptt_full; the grid is experiments/ablate.py (make ablate / ablate-quick).
"""

import pathlib

from memgpt_jax.config_lib import load_config


def get_config():
  config = load_config(pathlib.Path(__file__).parents[1] / 'synthetic.py')
  config.model.memory.bptt_segments = 0
  return config
