"""MemGPT on PG-19: a byte-level causal LM on whole books, where memory should pay off.

Prepare: tfds build pg19 --file_format=array_record [--data_dir=DIR]
         (once, where TensorFlow is installed: the builder reads the books from the
         public bucket gs://deepmind-gutenberg with tf.io.gfile)
Run:     memgpt-train --config=configs/pg19.py --workdir=runs/pg19
         [--config.data.tfds_data_dir=DIR when it is not ~/tensorflow_datasets]
Compare: the same with --config.model.memory.enabled=False (or configs/baseline_gpt.py's
         plain_gpt of this config) on equal steps.
Reaches: never run: it needs the prepared dataset above; no figure yet.

Records {'book_text', 'book_id', 'book_title', 'publication_date', 'book_link'}: one
Project Gutenberg book (published before 1919) each, the text under 'book_text'.
Rows are 8 segments of 256 bytes, read as streams (data.layout='streams'): each of the
32 rows of a batch continues its book from step to step, the memory and the pointer's
cache carried with it, so they span whole books while the gradient spans one row.
Evaluation reads the first 32 validation books whole, one per row, and reports bits
per byte by position in the book too. Splits: train / validation / test. Model and schedule: configs/corpus_base.py's long_examples variant (8 segments,
d_k = 128, remat, batch 32; remat to backprop through all 8) with twice its pointer cache. Tokenizer: bytes; a subword one reaches
further per segment (see configs/corpus_base.py):
--config.data.tokenizer=sentencepiece --config.data.sentencepiece.vocab_size=N.
"""

import pathlib

import ml_collections

from memgpt_jax.config_lib import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(f"{pathlib.Path(__file__).with_name('corpus_base.py')}:long_examples")
  config.model.pointer.cache_len = 512

  data = config.data
  data.source = 'tfds'
  data.tfds_name = 'pg19'
  data.text_key = 'book_text'
  data.layout = 'streams'
  config.train.eval_documents = 32

  config.sample.prompt = 'CHAPTER I.\n\n'
  return config
