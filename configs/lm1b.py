"""MemGPT on LM1B (One Billion Word Benchmark): a byte-level causal LM on news sentences.

Prepare: tfds build lm1b --file_format=array_record [--data_dir=DIR]
         (once, where TensorFlow is installed: the builder reads its 1.8 GB download
         with tf.io.gfile; training then reads the array_record files without it)
Run:     memgpt-train --config=configs/lm1b.py --workdir=runs/lm1b
         [--config.data.tfds_data_dir=DIR when it is not ~/tensorflow_datasets]
Reaches: never run: it needs the prepared dataset above; no figure yet.

Records {'text'}: one sentence each (~130 bytes), shuffled, so an example of
T * K = 1024 bytes packs unrelated sentences and memory has little to carry: this is
the short-context reference next to configs/pg19.py. LM1B has no validation split,
so evaluation is on test. Model and schedule: configs/corpus_base.py as it is.
Tokenizer: bytes (exact bits per byte); a subword one fits several times more text in
the same N: --config.data.tokenizer=sentencepiece --config.data.sentencepiece.vocab_size=N
(see configs/corpus_base.py).
"""

import pathlib

import ml_collections

from memgpt_jax.config_lib import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(pathlib.Path(__file__).with_name('corpus_base.py'))
  data = config.data
  data.source = 'tfds'
  data.tfds_name = 'lm1b'
  data.text_key = 'text'
  data.eval_split = 'test'

  config.sample.prompt = 'The '
  return config
