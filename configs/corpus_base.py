"""Shared base of the real-corpus configs: a larger MemGPT and a long schedule for an accelerator.

configs/lm1b.py, pg19.py, wiki40b.py, c4.py, cnn_dailymail.py, xsum.py, wmt14_de_en.py
and schema_guided_dialogue.py load this file and set their dataset (data.*) and
whatever differs for it: the example shape (segments, memory width, pointer cache),
the batch, the number of steps, or the model size (c4 larger, dialogue smaller).

Variant (after the file name, as configs/synthetic.py's): 'long_examples' (8 segments,
d_k = 128, remat, batch 32), the base of pg19.py and cnn_dailymail.py.

Not meant to be run alone: it names no dataset (data.* are configs/default.py's: the
Python stdlib corpus), though get_config() gives a complete, valid config.

Model: d_model 512, 8 layers of 8 heads, SwiGLU of 1408, bfloat16 compute; T = 256,
K = 4 (N = 1024 tokens), a delta memory in every layer (d_k = d_v = 64 per head), a pointer (head_dim 64) that may copy from
256 positions of earlier segments. Schedule: batch 64, 100k steps at learning rate 1e-3 after 2000 warmup
steps (cosine to 1e-4), a log line every 100 steps, evaluation on 50 batches and a
checkpoint every 2000.

Tokenizer: bytes, as in configs/default.py. Any of these configs takes subwords with
--config.data.tokenizer=sentencepiece --config.data.sentencepiece.vocab_size=N: a
SentencePiece model trained on the train split on the first run and kept as
<workdir>/tokenizer.model (data.sentencepiece.* in configs/default.py).
"""

import pathlib

import ml_collections

from memgpt_jax.config_lib import apply_variants, load_config

VARIANTS = {
    # Examples of 8 segments (N = 2048 tokens) for documents that run to several KB:
    # twice the memory key width to hold them, half the batch, remat to fit.
    'long_examples': {'model.num_segments': 8, 'model.memory.delta.key_dim': 128,
                      'model.remat': 'full', 'train.batch_size': 32},
}


def get_config(variants: str | None = None) -> ml_collections.ConfigDict:
  config = load_config(pathlib.Path(__file__).with_name('default.py'))
  model = config.model
  model.d_model = 512
  model.num_layers = 8
  model.num_heads = 8
  model.mlp_dim = 1408
  model.segment_len = 256  # T
  model.num_segments = 4  # K: N = 1024 tokens
  model.pointer.head_dim = 64
  model.pointer.cache_len = 256
  model.dtype = 'bfloat16'

  train = config.train
  train.batch_size = 64
  train.grad_accum_steps = 1  # one batch: default.py's micro-batches suit its rows
  train.num_steps = 100_000
  train.learning_rate = 1e-3
  train.warmup_steps = 2000
  train.log_every = 100
  train.eval_every = 2000
  train.eval_batches = 50
  train.checkpoint_every = 2000
  return apply_variants(config, variants, VARIANTS)
