"""MemGPT as a prefix LM on XSum: BBC article -> its one-sentence summary (byte-level).

Prepare: XSum is a manual download: fetch and extract the articles with the scripts of
         https://github.com/EdinburghNLP/XSum/tree/master/XSum-Dataset, pack the folder
         as xsum-extracts-from-downloads.tar.gz into MANUAL_DIR, then (once, where
         TensorFlow is installed)
         tfds build xsum --manual_dir=MANUAL_DIR --file_format=array_record [--data_dir=DIR]
Run:     memgpt-train --config=configs/xsum.py --workdir=runs/xsum
         [--config.data.tfds_data_dir=DIR when it is not ~/tensorflow_datasets]
Reaches: never run: it needs the prepared dataset above; no figure yet.

Records {'document', 'summary'} (version 1.1.0): the document is the input
(data.inputs_key), the summary the target (data.targets_key) that the loss is on. XSum
summaries are abstractive, so the pointer copies less than on configs/cnn_dailymail.py.
Each evaluation also reports exact match and ROUGE-1/2/L of the greedy summaries of
the first train.generate_examples validation records (at most
train.generate_max_tokens bytes each: summaries run to ~130). Splits: train /
validation / test. Model and schedule: those of configs/cnn_dailymail.py. Tokenizer:
bytes; for subwords (see configs/corpus_base.py) add
--config.data.tokenizer=sentencepiece --config.data.sentencepiece.vocab_size=N.
"""

import pathlib

import ml_collections

from memgpt_jax.config_lib import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(pathlib.Path(__file__).with_name('cnn_dailymail.py'))
  data = config.data
  data.tfds_name = 'xsum'
  data.inputs_key = 'document'
  data.targets_key = 'summary'
  config.train.generate_max_tokens = 192
  return config
