"""MemGPT as a prefix LM on CNN/DailyMail: news article -> its highlights (byte-level).

Prepare: tfds build cnn_dailymail --file_format=array_record [--data_dir=DIR]
         (once, where TensorFlow is installed: the builder downloads the stories and
         reads them with tf.io.gfile)
Run:     memgpt-train --config=configs/cnn_dailymail.py --workdir=runs/cnn_dailymail
         [--config.data.tfds_data_dir=DIR when it is not ~/tensorflow_datasets]
Reaches: never run: it needs the prepared dataset above; no figure yet.

Records {'article', 'highlights', 'publisher', 'id'} (version 3.4.0): the article is the
input (data.inputs_key), the highlights, one sentence a line, the target
(data.targets_key) that the loss is on. Articles run to several KB: the 8 segments of
256 bytes carry the article in memory and the pointer's cache, where the highlights'
names and numbers are copied from. Each evaluation also reports exact match and
ROUGE-1/2/L of the greedy highlights of the first train.generate_examples validation
records (at most train.generate_max_tokens bytes each: highlights run to ~300).
Splits: train / validation / test. Model and schedule: configs/corpus_base.py's
long_examples variant (8 segments, d_k = 128, remat, batch 32) with a pointer cache of
1024 and 50k steps. Tokenizer: bytes; a subword one fits more of the article in N (see
configs/corpus_base.py):
--config.data.tokenizer=sentencepiece --config.data.sentencepiece.vocab_size=N.
"""

import pathlib

import ml_collections

from memgpt_jax.config_lib import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(f"{pathlib.Path(__file__).with_name('corpus_base.py')}:long_examples")
  config.model.pointer.cache_len = 1024

  data = config.data
  data.source = 'tfds'
  data.tfds_name = 'cnn_dailymail'
  data.text_key = ''
  data.inputs_key = 'article'
  data.targets_key = 'highlights'
  data.task_metrics = 'summarization'

  train = config.train
  train.num_steps = 50_000
  train.generate_max_tokens = 384
  return config
