"""MemGPT as a prefix LM on WMT14 German -> English translation (byte-level).

Prepare: tfds build wmt14_translate/de-en --file_format=array_record [--data_dir=DIR]
         (once, where TensorFlow is installed: the builder downloads Europarl v7,
         CommonCrawl and News Commentary v9 from statmt.org and reads them with tf.io)
Run:     memgpt-train --config=configs/wmt14_de_en.py --workdir=runs/wmt14_de_en
         [--config.data.tfds_data_dir=DIR when it is not ~/tensorflow_datasets]
Reaches: not run here (no TFDS data on the development machine): no figure yet.

Records {'de', 'en'} (tfds.features.Translation, config de-en, version 1.0.0): the
German sentence is the input (data.inputs_key), the English one the target
(data.targets_key) that the loss is on. Splits: train, validation (newstest2013), test
(newstest2014). A sentence pair is a few hundred bytes: 4 segments
of 128. Other directions: --config.data.tfds_name=wmt14_translate/fr-en with
inputs_key=fr. Tokenizer: bytes; data.tokenizer='sentencepiece' (being added) is the
usual choice for translation.
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
  model.segment_len = 128  # T
  model.num_segments = 4  # K: N = 512 bytes
  model.memory.num_slots = 32
  model.pointer.head_dim = 64
  model.pointer.cache_len = 384
  model.dtype = 'bfloat16'

  data = config.data
  data.source = 'tfds'
  data.tfds_name = 'wmt14_translate/de-en'
  data.text_key = ''
  data.inputs_key = 'de'
  data.targets_key = 'en'
  data.train_split = 'train'
  data.eval_split = 'validation'

  train = config.train
  train.batch_size = 128
  train.num_steps = 100_000
  train.learning_rate = 1e-3
  train.warmup_steps = 4000
  train.log_every = 100
  train.eval_every = 2000
  train.eval_batches = 50
  train.checkpoint_every = 2000
  return config
