"""MemGPT on C4 English: a byte-level causal LM on cleaned Common Crawl web pages.

Prepare: tfds build c4/en --file_format=array_record [--data_dir=DIR]
         (once, where TensorFlow and Apache Beam are installed: a Beam pipeline over
         Common Crawl, terabytes of download, meant for a distributed runner such as
         Dataflow; a copy prepared as tfrecord can instead be converted with
         tfds convert_format --dataset_version_dir=DIR/c4/en/VERSION
         --out_file_format=array_record)
Run:     memgpt-train --config=configs/c4.py --workdir=runs/c4
         [--config.data.tfds_data_dir=DIR when it is not ~/tensorflow_datasets]
Reaches: never run: it needs the prepared dataset above; no figure yet.

Records {'text', 'url', 'content-type', 'content-length', 'timestamp'}: one page each.
Splits: train / validation only (0.1% of pages by URL hash). One pass over c4/en is far
more than num_steps sees: the run is data-rich, so it is sized by steps. Model and
schedule: configs/corpus_base.py's example shape with a larger model (d_model 768,
12 layers) and a longer schedule (batch 128, 200k steps, learning rate 6e-4).
Tokenizer: bytes; a subword one sees more of a page per example (see
configs/corpus_base.py):
--config.data.tokenizer=sentencepiece --config.data.sentencepiece.vocab_size=N.
"""

import pathlib

import ml_collections

from memgpt_jax.config_lib import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(pathlib.Path(__file__).with_name('corpus_base.py'))
  model = config.model
  model.d_model = 768
  model.num_layers = 12
  model.num_heads = 12
  model.mlp_dim = 2048

  data = config.data
  data.source = 'tfds'
  data.tfds_name = 'c4/en'
  data.text_key = 'text'

  train = config.train
  train.batch_size = 128
  train.num_steps = 200_000
  train.learning_rate = 6e-4
  train.warmup_steps = 4000
  train.eval_every = 5000
  train.checkpoint_every = 5000

  config.sample.prompt = 'The '
  return config
