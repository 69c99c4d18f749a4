"""MemGPT on LM1B (One Billion Word Benchmark): a byte-level causal LM on news sentences.

Prepare: tfds build lm1b --file_format=array_record [--data_dir=DIR]
         (once, where TensorFlow is installed: the builder reads its 1.8 GB download
         with tf.io.gfile; training then reads the array_record files without it)
Run:     memgpt-train --config=configs/lm1b.py --workdir=runs/lm1b
         [--config.data.tfds_data_dir=DIR when it is not ~/tensorflow_datasets]
Reaches: not run here (no TFDS data on the development machine): no figure yet.

Records {'text'}: one sentence each (~130 bytes), shuffled, so an example of
T * K = 1024 bytes packs unrelated sentences and memory has little to carry: this is
the short-context reference next to configs/pg19.py. LM1B has no validation split,
so evaluation is on test. Tokenizer: bytes (exact bits per byte); a subword one
(data.tokenizer='sentencepiece', being added) fits several times more text in the same N.
"""

import pathlib

import ml_collections

from memgpt_jax.config_lib import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(pathlib.Path(__file__).with_name('default.py'))
  model = config.model
  model.d_model = 512
  model.num_layers = 8
  model.num_heads = 8
  model.mlp_dim = 1408
  model.segment_len = 256  # T
  model.num_segments = 4  # K: N = 1024 bytes
  model.memory.num_slots = 32
  model.pointer.head_dim = 64
  model.pointer.cache_len = 256
  model.dtype = 'bfloat16'

  data = config.data
  data.source = 'tfds'
  data.tfds_name = 'lm1b'
  data.text_key = 'text'
  data.train_split = 'train'
  data.eval_split = 'test'

  train = config.train
  train.batch_size = 64
  train.num_steps = 100_000
  train.learning_rate = 1e-3
  train.warmup_steps = 2000
  train.log_every = 100
  train.eval_every = 2000
  train.eval_batches = 50
  train.checkpoint_every = 2000

  config.sample.prompt = 'The '
  return config
