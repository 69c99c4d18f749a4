"""MemGPT on Wiki-40B English: a byte-level causal LM on cleaned Wikipedia articles.

Prepare: tfds build wiki40b/en --file_format=array_record [--data_dir=DIR]
         (once, where TensorFlow and Apache Beam are installed: a Beam pipeline over
         TFRecords in a public bucket; TFDS suggests a Beam runner such as Dataflow)
Run:     memgpt-train --config=configs/wiki40b.py --workdir=runs/wiki40b
         [--config.data.tfds_data_dir=DIR when it is not ~/tensorflow_datasets]
Reaches: never run: it needs the prepared dataset above; no figure yet.

Records {'wikidata_id', 'text', 'version_id'}: one article each; the Wiki-40B release
marks structure in-line in 'text' (_START_ARTICLE_, _START_SECTION_, _START_PARAGRAPH_,
_NEWLINE_), which the model learns as plain bytes. Splits: train / validation / test.
Other languages: --config.data.tfds_name=wiki40b/de (any wiki40b config). Model and
schedule: configs/corpus_base.py as it is. Tokenizer: bytes; for subwords
add --config.data.tokenizer=sentencepiece --config.data.sentencepiece.vocab_size=N
(see configs/corpus_base.py).
"""

import pathlib

import ml_collections

from memgpt_jax.config_lib import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(pathlib.Path(__file__).with_name('corpus_base.py'))
  data = config.data
  data.source = 'tfds'
  data.tfds_name = 'wiki40b/en'
  data.text_key = 'text'

  config.sample.prompt = '_START_ARTICLE_\n'
  return config
