"""MemGPT as a prefix LM on WMT14 German -> English translation (byte-level).

Prepare: tfds build wmt14_translate/de-en --file_format=array_record [--data_dir=DIR]
         (once, where TensorFlow is installed: the builder downloads Europarl v7,
         CommonCrawl and News Commentary v9 from statmt.org and reads them with tf.io)
Run:     memgpt-train --config=configs/wmt14_de_en.py --workdir=runs/wmt14_de_en
         [--config.data.tfds_data_dir=DIR when it is not ~/tensorflow_datasets]
Reaches: never run: it needs the prepared dataset above; no figure yet.

Records {'de', 'en'} (tfds.features.Translation, config de-en, version 1.0.0): the
German sentence is the input (data.inputs_key), the English one the target
(data.targets_key) that the loss is on. Splits: train, validation (newstest2013), test
(newstest2014). A sentence pair is a few hundred bytes: 4 segments of 128. Each
evaluation also reports exact match and BLEU of the greedy translations of the first
train.generate_examples validation records (at most train.generate_max_tokens bytes
each; the source keeps the rest of the N = 512). Other directions:
--config.data.tfds_name=wmt14_translate/fr-en with inputs_key=fr. Model and schedule:
configs/corpus_base.py with 128-byte segments, a pointer cache of 384, batch 128 and
4000 warmup steps. Tokenizer: bytes; the usual choice for translation is subword
(see configs/corpus_base.py):
--config.data.tokenizer=sentencepiece --config.data.sentencepiece.vocab_size=N.
"""

import pathlib

import ml_collections

from memgpt_jax.config_lib import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(pathlib.Path(__file__).with_name('corpus_base.py'))
  model = config.model
  model.segment_len = 128  # T
  model.num_segments = 4  # K: N = 512 bytes
  model.pointer.cache_len = 384

  data = config.data
  data.source = 'tfds'
  data.tfds_name = 'wmt14_translate/de-en'
  data.text_key = ''
  data.inputs_key = 'de'
  data.targets_key = 'en'
  data.task_metrics = 'translation'

  train = config.train
  train.batch_size = 128
  train.warmup_steps = 4000
  train.generate_max_tokens = 256
  return config
