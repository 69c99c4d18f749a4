"""A tiny MemGPT for tests and smoke runs: compiles and trains in seconds.

Run:     memgpt-train --config=configs/tiny.py --workdir=runs/tiny
Reaches: nothing useful; loss falls from ~5.6 within its 30 steps (a smoke test).
"""

import pathlib

from memgpt_jax.config_lib import load_config


def get_config():
  config = load_config(pathlib.Path(__file__).with_name('default.py'))
  model = config.model
  model.d_model = 32
  model.num_layers = 1  # tests that need layers to interact set 2
  model.encoder.num_layers = 1  # model.arch='encoder_decoder'; tests that need two set 2
  model.num_heads = 2
  model.mlp_dim = 64
  model.segment_len = 8
  model.num_segments = 3
  model.segment_unroll = 1  # a loop: tests compile it quicker
  model.memory.slots.num_slots = 4  # when memory.kind='slots'
  model.pointer.head_dim = 16
  model.pointer.cache_len = 8

  train = config.train
  train.batch_size = 4
  train.grad_accum_steps = 1  # one batch: default.py's micro-batches suit its rows
  train.num_steps = 30
  train.warmup_steps = 5
  train.log_every = 5
  train.eval_every = 15
  train.eval_batches = 2
  train.checkpoint_every = 15
  train.async_checkpointing = False

  config.sample.max_new_tokens = 20
  return config
