"""MemGPT on long documents: the standard library's packages, each package's files
joined into one document (tens to hundreds of thousands of bytes), read as streams.

Run:     memgpt-train --config=configs/long_text.py --workdir=runs/long_text
Compare: python experiments/ablate.py --grid=long_text (plain GPTs over one segment
         and over the row, each part alone, streams against packed rows)
Reaches: see experiments/results/long_text.md.

Every row of the batch is a stream: it continues from step to step through one
package after another, and the model's state (the memory, the pointer's cache) is
carried with it, so the memory spans whole packages while the gradient spans one row
(data.layout='streams', memgpt_jax/data/streams.py). Evaluation reads every validation
package whole and reports bits per byte by position in the package as well.
"""

import pathlib

import ml_collections

from memgpt_jax.config_lib import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(pathlib.Path(__file__).with_name('default.py'))
  config.data.source = 'pystdlib_packages'
  config.data.layout = 'streams'

  model = config.model
  model.d_model = 128
  model.num_layers = 3
  model.num_heads = 4
  model.mlp_dim = 384

  train = config.train
  train.batch_size = 8  # 8 streams
  train.grad_accum_steps = 2
  train.num_steps = 2000  # 8.2M tokens: about 0.7 of an epoch of the 11.3 MB
  train.learning_rate = 3e-3
  train.warmup_steps = 100
  train.log_every = 50
  train.eval_every = 1000
  train.checkpoint_every = 250
  return config
