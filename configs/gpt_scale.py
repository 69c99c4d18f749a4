"""GPT-2/GPT-3 sizes on C4 with a 32K SentencePiece vocabulary: the plain GPT and its
MemGPT twin, for accelerators (configs/gpt_125m.py, gpt_350m.py, gpt_1_3b.py).

  --config=configs/gpt_scale.py:SIZE          the plain GPT: one 1024-token segment
  --config=configs/gpt_scale.py:SIZE,memgpt   MemGPT: 2 segments of 512, a delta memory
                                              in every 4th layer, pointer over 512 tokens
SIZE: 125m (d 768, 12 layers, 12 heads), 350m (d 1024, 24 layers, 16 heads) or 1_3b
(d 2048, 24 layers, 16 heads); a SwiGLU MLP of about 8/3 d; bfloat16 compute, float32
parameters and optimizer state. Tokens per run about 20 per parameter (batch 256 x 1024
tokens); learning rates as GPT-3's for its sizes.

Prepare: C4 as for configs/c4.py (tfds build c4/en --file_format=array_record).
Reaches: not trained yet: it needs the prepared dataset above and an accelerator.
Speed:   the train steps timed on one H200: docs/performance.md, 'Model sizes on a GPU'.
"""

import pathlib

import ml_collections

from memgpt_jax import config_lib
from memgpt_jax.errors import ConfigError

# size: (d_model, layers, heads, SwiGLU width, learning rate, steps)
SIZES = {
    '125m': (768, 12, 12, 2048, 6e-4, 10_000),
    '350m': (1024, 24, 16, 2816, 3e-4, 27_000),
    '1_3b': (2048, 24, 16, 5632, 2e-4, 100_000),
}


def get_config(arg: str = '125m') -> ml_collections.ConfigDict:
  size, *variant = arg.split(',')
  if size not in SIZES or variant not in ([], ['memgpt']):
    raise ConfigError(f'configs/gpt_scale.py:{arg}: use SIZE or SIZE,memgpt with '
                      f'SIZE one of {", ".join(SIZES)}')
  d_model, layers, heads, mlp_dim, learning_rate, steps = SIZES[size]
  config = config_lib.load_config(pathlib.Path(__file__).with_name('c4.py'))
  model = config.model
  model.d_model, model.num_layers, model.num_heads, model.mlp_dim = (
      d_model, layers, heads, mlp_dim)
  model.segment_len, model.num_segments = 512, 2  # T, K: N = 1024 tokens
  model.memory.kind = 'delta'
  # Every 4th layer: the memory's projections cost about 4 d^2 per layer, as much as
  # attention's; in a quarter of the layers MemGPT stays within ~8% of the GPT's size.
  model.memory.layers = ','.join(str(layer) for layer in range(3, layers, 4))
  model.memory.delta.key_dim = model.memory.delta.value_dim = 0  # the head dimension
  model.pointer.head_dim = 64
  model.pointer.cache_len = 512
  model.dtype = 'bfloat16'
  model.remat = 'dots' if size == '1_3b' else 'none'
  model.scan_layers = True  # compile time flat in depth (the twin: groups of 4 layers)

  data = config.data
  data.tokenizer = 'sentencepiece'
  data.sentencepiece.vocab_size = 32_000

  train = config.train
  train.batch_size = 256
  train.num_steps = steps
  train.learning_rate = learning_rate
  train.warmup_steps = steps // 50
  train.eval_every = train.checkpoint_every = 2000
  return config if variant else config_lib.plain_gpt(config)
