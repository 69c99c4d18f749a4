"""What a training step keeps from its forward pass for its backward pass: the
residuals of the loss's VJP, for the plain GPT and MemGPT of a config.

  python experiments/activation_memory.py [--config=configs/gpt_350m.py:memgpt]
                                          [--config.train.batch_size=16]
                                          [--out=experiments/results] [--name=...]

Counted on abstract inputs (jax.eval_shape: nothing is allocated or run), before XLA
merges equal arrays, so it reads the same on every backend for a given program; which
attention runs does depend on the backend (model.attention='auto': the spelled-out
softmax off a GPU keeps its [heads, tokens, tokens] weights, cuDNN's kernel keeps
none of them). On an accelerator these bytes are written in the forward pass and read
back in the backward one, and XLA zero-fills the layer loop's stacks of them first.
Writes <out>/<name>.json, .md.
"""

import collections
import math
import pathlib

from absl import app
from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
from ml_collections import config_flags

from memgpt_jax import config_lib
from memgpt_jax import host_memory
from memgpt_jax import losses
from memgpt_jax.data.tokenizer import declared_vocab_size
from memgpt_jax.model.transformer import MemGPT, init_tokens
from memgpt_jax.provenance import devices, provenance, write_results

ROOT = pathlib.Path(__file__).resolve().parents[1]
_CONFIG = config_flags.DEFINE_config_file(
    'config', str(ROOT / 'configs' / 'gpt_350m.py') + ':memgpt', 'MemGPT config.')
_OUT = flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
_NAME = flags.DEFINE_string('name', 'activation_memory', 'Results file name.')
_LARGEST = 8  # array shapes listed per model


def kept_for_backward(config) -> list[jax.ShapeDtypeStruct]:
  """The arrays the loss's backward pass takes from its forward pass, for one
  process's batch of config.train.batch_size rows."""
  cfg = config_lib.validate(config, declared_vocab_size(config.data))
  model = MemGPT(cfg)
  params = jax.eval_shape(lambda: nn.unbox(model.init(jax.random.key(0), init_tokens(cfg))))
  tokens = jax.ShapeDtypeStruct((config.train.batch_size, cfg.seq_len), jnp.int32)

  def residuals(params, tokens):
    loss = lambda p: -losses.token_log_probs(model.apply(p, tokens), tokens).mean()
    return jax.tree.leaves(jax.vjp(loss, params)[1])

  return jax.eval_shape(residuals, params, tokens)


def summary(arrays: list[jax.ShapeDtypeStruct]) -> dict:
  size = lambda a: math.prod(a.shape) * a.dtype.itemsize
  by_shape = collections.Counter()
  for a in arrays:
    by_shape[f'{a.dtype.name}[{",".join(map(str, a.shape))}]'] += size(a)
  return {'arrays': len(arrays), 'bytes': sum(size(a) for a in arrays),
          'float32_bytes': sum(size(a) for a in arrays if a.dtype == jnp.float32),
          'largest': dict(by_shape.most_common(_LARGEST))}


def markdown(results: dict) -> str:
  gib = lambda count: f'{count / 2**30:.2f}'
  lines = [f'# Kept for the backward pass: {results["name"]}', '',
           f'`{results["command"]}` at commit {results["commit"]}, batch '
           f'{results["batch_size"]} x {results["seq_len"]} tokens, {results["dtype"]}, '
           f'attention as configured on {results["device"]}.', '',
           '| model | GiB | of it float32 | arrays |', '|---|---|---|---|']
  for name, r in results['models'].items():
    lines.append(f'| {name} | {gib(r["bytes"])} | {gib(r["float32_bytes"])} | '
                 f'{r["arrays"]} |')
  for name, r in results['models'].items():
    lines += ['', f'{name}, the largest by shape (all arrays of that shape), GiB:', '']
    lines += [f'- `{shape}`: {gib(count)}' for shape, count in r['largest'].items()]
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  config = _CONFIG.value
  models = {'plain_gpt': config_lib.plain_gpt(config), 'memgpt': config}
  results = {'name': _NAME.value, **provenance(), 'device': devices(),
             'dtype': config.model.dtype, 'batch_size': config.train.batch_size,
             'seq_len': config.model.segment_len * config.model.num_segments,
             'models': {name: summary(kept_for_backward(c)) for name, c in models.items()}}
  table = markdown(results)
  print(table)
  write_results(_OUT.value, _NAME.value, results, table)


if __name__ == '__main__':
  host_memory.run(app.run, main)
