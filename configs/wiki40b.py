"""MemGPT on Wiki-40B English: a byte-level causal LM on cleaned Wikipedia articles.

Prepare: tfds build wiki40b/en --file_format=array_record [--data_dir=DIR]
         (once, where TensorFlow and Apache Beam are installed: a Beam pipeline over
         TFRecords in a public bucket; TFDS suggests a Beam runner such as Dataflow)
Run:     memgpt-train --config=configs/wiki40b.py --workdir=runs/wiki40b
         [--config.data.tfds_data_dir=DIR when it is not ~/tensorflow_datasets]
Reaches: not run here (no TFDS data on the development machine): no figure yet.

Records {'wikidata_id', 'text', 'version_id'}: one article each; the Wiki-40B release
marks structure in-line in 'text' (_START_ARTICLE_, _START_SECTION_, _START_PARAGRAPH_,
_NEWLINE_), which the model learns as plain bytes. Splits: train / validation / test.
Other languages: --config.data.tfds_name=wiki40b/de (any wiki40b config). Tokenizer:
bytes; data.tokenizer='sentencepiece' (being added) is the subword option.
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
  data.tfds_name = 'wiki40b/en'
  data.text_key = 'text'
  data.train_split = 'train'
  data.eval_split = 'validation'

  train = config.train
  train.batch_size = 64
  train.num_steps = 100_000
  train.learning_rate = 1e-3
  train.warmup_steps = 2000
  train.log_every = 100
  train.eval_every = 2000
  train.eval_batches = 50
  train.checkpoint_every = 2000

  config.sample.prompt = '_START_ARTICLE_\n'
  return config
