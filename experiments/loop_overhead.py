"""What the training loop costs beside the step: memgpt-train's tokens/s against the bare
jitted train step on the same model, batch shape and devices.

  python experiments/loop_overhead.py [--steps=300] [--out=experiments/results]
      [--name=loop_overhead]

The shape people try first on a laptop: 4 layers, d_model 128, rows of 64 tokens in
one segment, batches of 12, for the plain GPT and for MemGPT (delta memory, pointer)
of configs/default.py. The bare loop runs `partitioner.train_step` on one fixed batch
(no input pipeline, no logging, no checkpoints); the trainer runs
`train_and_evaluate` on the default corpus with its real pipeline, logging every 50
steps and one checkpoint at the end, and its tokens/s is the mean of its logged
windows after the first (which holds the compilation). Writes <out>/<name>.md, .json.
"""

import pathlib
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

from memgpt_jax import config_lib
from memgpt_jax import host_memory
from memgpt_jax.data.pipeline import make_train_iterator
from memgpt_jax.data.tokenizer import make_tokenizer
from memgpt_jax.model.transformer import MemGPT
from memgpt_jax.provenance import provenance, write_results
from memgpt_jax.training.metrics_writer import read_metrics
from memgpt_jax.training.optimizer import make_optimizer
from memgpt_jax.training.partitioner import make_partitioner
from memgpt_jax.training.trainer import train_and_evaluate

ROOT = pathlib.Path(__file__).resolve().parents[1]
_STEPS = flags.DEFINE_integer('steps', 300, 'Steps of each trainer run (and of the bare loop).')
_OUT = flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
_NAME = flags.DEFINE_string('name', 'loop_overhead', 'Results file name.')
_LOG_EVERY = 50


def small_config(model: str):
  """configs/default.py at the laptop shape; `model` 'memgpt' or 'plain_gpt'."""
  config = config_lib.load_config(ROOT / 'configs' / 'default.py')
  config.model.update(num_layers=4, d_model=128, num_heads=4, mlp_dim=512, segment_len=64,
                      num_segments=1)
  if model == 'plain_gpt':
    config = config_lib.plain_gpt(config)
  config.train.update(batch_size=12, grad_accum_steps=1, num_steps=_STEPS.value,
                      log_every=_LOG_EVERY, eval_every=10**9, eval_batches=1,
                      checkpoint_every=10**9)
  return config


def bare_tokens_per_second(config) -> float:
  """The jitted step alone, on one batch of the real pipeline, after its compilation."""
  tokenizer = make_tokenizer(config.data)
  cfg = config_lib.validate(config, tokenizer.vocab_size)
  partitioner = make_partitioner(config, MemGPT(cfg), make_optimizer(config.train))
  state = partitioner.from_global(partitioner.init_state())
  batch = next(make_train_iterator(config, tokenizer))
  state, metrics = partitioner.train_step(state, batch)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(_STEPS.value):
    state, metrics = partitioner.train_step(state, batch)
  jax.block_until_ready(metrics)
  return _STEPS.value * batch['inputs'].size / (time.perf_counter() - start)


def trainer_tokens_per_second(config) -> float:
  with tempfile.TemporaryDirectory() as workdir:
    train_and_evaluate(config, workdir)
    speeds = [r['tokens_per_second'] for r in read_metrics(workdir, 'train')
              if 'tokens_per_second' in r]
  return float(np.mean(speeds[1:]))


def markdown(report: dict) -> str:
  lines = [f'# Training loop overhead: {report["name"]}', '',
           f'`{report["command"]}` at commit {report["commit"]} on 1 x '
           f'{report["platform"]}: 4 layers, d_model 128, batches of 12 rows of 64 tokens, '
           f'{report["steps"]} steps each. The bare loop is the jitted step on one fixed '
           'batch; memgpt-train is the whole program (input pipeline, logging every '
           f'{_LOG_EVERY} steps), its tokens/s the mean of its logged windows after the '
           'first.', '',
           '| model | bare step tokens/s | memgpt-train tokens/s | memgpt-train / bare |',
           '|---|---|---|---|']
  for name, row in report['models'].items():
    lines.append(f'| {name} | {row["bare"]:,.0f} | {row["trainer"]:,.0f} | '
                 f'{row["trainer"] / row["bare"]:.2f} |')
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  models = {}
  for name in ('plain_gpt', 'memgpt'):
    config = small_config(name)
    models[name] = {'bare': bare_tokens_per_second(config),
                    'trainer': trainer_tokens_per_second(config)}
    print(f'[loop_overhead] {name}: {models[name]}', flush=True)
  report = {'name': _NAME.value, **provenance(), 'platform': jax.devices()[0].platform,
            'steps': _STEPS.value, 'models': models}
  write_results(_OUT.value, _NAME.value, report, markdown(report))
  print(markdown(report))


if __name__ == '__main__':
  host_memory.run(app.run, main)
