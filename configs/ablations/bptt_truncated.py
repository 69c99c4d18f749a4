"""Truncated BPTT: the memory's gradient is cut at every segment.

One change from configs/synthetic.py. Run: memgpt-train --config=configs/ablations/bptt_truncated.py
--workdir=runs/bptt_truncated; the grid is experiments/ablate.py (make ablate / ablate-quick).
"""

import pathlib

from memgpt_jax.config_lib import load_config


def get_config():
  config = load_config(pathlib.Path(__file__).parents[1] / 'synthetic.py')
  config.model.memory.bptt_segments = 1
  return config
