"""MemGPT as a prefix LM on XSum: BBC article -> its one-sentence summary (byte-level).

Prepare: XSum is a manual download: fetch and extract the articles with the scripts of
         https://github.com/EdinburghNLP/XSum/tree/master/XSum-Dataset, pack the folder
         as xsum-extracts-from-downloads.tar.gz into MANUAL_DIR, then (once, where
         TensorFlow is installed)
         tfds build xsum --manual_dir=MANUAL_DIR --file_format=array_record [--data_dir=DIR]
Run:     memgpt-train --config=configs/xsum.py --workdir=runs/xsum
         [--config.data.tfds_data_dir=DIR when it is not ~/tensorflow_datasets]
Reaches: not run here (no TFDS data on the development machine): no figure yet.

Records {'document', 'summary'} (version 1.1.0): the document is the input
(data.inputs_key), the summary the target (data.targets_key) that the loss is on. XSum
summaries are abstractive, so the pointer copies less than on configs/cnn_dailymail.py.
Splits: train / validation / test. Tokenizer: bytes; data.tokenizer='sentencepiece'
(being added) is the subword option.
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
  model.num_segments = 8  # K: N = 2048 bytes
  model.memory.num_slots = 64
  model.pointer.head_dim = 64
  model.pointer.cache_len = 1024
  model.dtype = 'bfloat16'
  model.remat = True

  data = config.data
  data.source = 'tfds'
  data.tfds_name = 'xsum'
  data.text_key = ''
  data.inputs_key = 'document'
  data.targets_key = 'summary'
  data.train_split = 'train'
  data.eval_split = 'validation'

  train = config.train
  train.batch_size = 32
  train.num_steps = 50_000
  train.learning_rate = 1e-3
  train.warmup_steps = 2000
  train.log_every = 100
  train.eval_every = 2000
  train.eval_batches = 50
  train.checkpoint_every = 2000
  return config
