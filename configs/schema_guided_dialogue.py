"""MemGPT on the Schema-Guided Dialogue corpus: multi-turn task dialogues as one text.

Prepare: tfds build schema_guided_dialogue --file_format=array_record [--data_dir=DIR]
         (once; downloads the DSTC8 release from GitHub, ~37 MB)
Run:     memgpt-train --config=configs/schema_guided_dialogue.py --workdir=runs/sgd
         [--config.data.tfds_data_dir=DIR when it is not ~/tensorflow_datasets]
Reaches: never run: it needs the prepared dataset above; no figure yet.

Records {'utterances', 'first_speaker', 'metadata': {'services': {'name'}}}: one
dialogue (user and system alternating, 'first_speaker' says who starts) each. The turns
under 'utterances' (a sequence of texts) are written turn by turn with the chat template
(data.chat: "User: ...", "Assistant: ...", the speaker first_speaker says first), the
template memgpt-chat talks with, into one document, a causal LM over the whole
conversation: slot values said early (a city, a time, a
restaurant) come back turns later, often segments later, which is what memory and the
pointer are for. Splits: train / dev / test. Model and schedule: configs/corpus_base.py
scaled down for a small corpus (d_model 384, 6 layers, float32; 8 segments of 128;
batch 32, 20k steps). Tokenizer: bytes; the subword option is
--config.data.tokenizer=sentencepiece --config.data.sentencepiece.vocab_size=N
(see configs/corpus_base.py).
"""

import pathlib

import ml_collections

from memgpt_jax.config_lib import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(pathlib.Path(__file__).with_name('corpus_base.py'))
  model = config.model
  model.d_model = 384
  model.num_layers = 6
  model.num_heads = 6
  model.mlp_dim = 1024
  model.dtype = 'float32'
  model.segment_len = 128  # T
  model.num_segments = 8  # K: N = 1024 bytes
  model.pointer.cache_len = 512

  data = config.data
  data.source = 'tfds'
  data.tfds_name = 'schema_guided_dialogue'
  data.text_key = 'utterances'
  data.first_speaker_key = 'first_speaker'  # turns written with data.chat, as memgpt-chat talks
  data.eval_split = 'dev'

  train = config.train
  train.batch_size = 32
  train.num_steps = 20_000
  train.warmup_steps = 1000
  train.eval_every = 1000
  train.checkpoint_every = 1000

  config.sample.prompt = 'I would like to '
  return config
