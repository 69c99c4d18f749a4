"""Rows from all over a single text file against rows in file order, on a plain GPT.

  python experiments/batch_mixing.py [--steps=1500] [--seeds=0,1,2] [--corpus_bytes=1000000]
      [--workdir=runs/batch_mixing] [--out=experiments/results] [--name=batch_mixing]

The corpus is one text file: the first Python standard library files (the default
corpus's sorted files) joined up to --corpus_bytes, its last
data.validation_fraction held out. A plain GPT (4 layers, d_model 128, rows of 64
tokens, batches of 12) trains on it twice per seed for the same steps: with
data.shuffle_window_tokens 0 (the file packed in order: a batch is 12 consecutive
stretches of it, the next batch the stretch after) and with the default window
(pieces cut at random offsets, shuffled). Both are scored on the whole validation
split. Writes <out>/<name>.md and .json.
"""

import pathlib
import shutil
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

from memgpt_jax import config_lib
from memgpt_jax import host_memory
from memgpt_jax.data import builders
from memgpt_jax.provenance import provenance, write_results
from memgpt_jax.training import trainer
from memgpt_jax.training.metrics_writer import read_metrics

ROOT = pathlib.Path(__file__).resolve().parents[1]
_STEPS = flags.DEFINE_integer('steps', 1500, 'Training steps of each run.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds (model and data order).')
_CORPUS_BYTES = flags.DEFINE_integer('corpus_bytes', 1_000_000, 'Size of the text file.')
_WORKDIR = flags.DEFINE_string('workdir', str(ROOT / 'runs' / 'batch_mixing'), 'Runs.')
_OUT = flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
_NAME = flags.DEFINE_string('name', 'batch_mixing', 'Results file name.')

# Evaluation batches at most: more than the validation split holds, so all of it.
_ALL_OF_IT = 10**6


def train_config(corpus: pathlib.Path, window_tokens: int | None, seed: int, steps: int,
                 data_dir: pathlib.Path):
  """The plain GPT of configs/default.py at the experiment's shape on the one file;
  `window_tokens` None keeps the default shuffle window."""
  config = config_lib.load_config(ROOT / 'configs' / 'default.py')
  model = config.model
  model.num_layers, model.d_model, model.num_heads, model.mlp_dim = 4, 128, 4, 512
  model.segment_len, model.num_segments = 64, 1
  config = config_lib.plain_gpt(config)
  config.data.update(source='text', paths=str(corpus), tfds_data_dir=str(data_dir))
  if window_tokens is not None:
    config.data.shuffle_window_tokens = window_tokens
  config.seed = config.data.shuffle_seed = seed
  config.train.update(batch_size=12, grad_accum_steps=1, num_steps=steps,
                      eval_every=steps // 4, eval_batches=_ALL_OF_IT,
                      checkpoint_every=steps, keep_checkpoints=1)
  return config


def train_one(config, workdir: pathlib.Path) -> dict:
  """Trains from scratch; the final validation and its curve, and the wall time."""
  shutil.rmtree(workdir, ignore_errors=True)
  start = time.perf_counter()
  final = trainer.train_and_evaluate(config, workdir)
  seconds = time.perf_counter() - start
  speeds = [r['tokens_per_second'] for r in read_metrics(workdir, 'train')
            if 'tokens_per_second' in r]
  return {'shuffle_window_tokens': config.data.shuffle_window_tokens,
          'bits_per_byte': final['bits_per_byte'], 'loss': final['loss'],
          'validation_curve': [[r['step'], r['bits_per_byte']]
                               for r in read_metrics(workdir, 'validation')],
          'tokens_per_second': sum(speeds) / len(speeds), 'seconds': seconds}


def _mean_std(values: list[float]) -> str:
  return f'{np.mean(values):.3f} ± {np.std(values):.3f}'


def markdown(report: dict) -> str:
  runs, corpus = report['runs'], report['corpus']
  steps = [step for step, _ in next(iter(runs.values()))[0]['validation_curve']]
  lines = [f'# Batch mixing: {report["name"]}', '',
           f'`{report["command"]}` at commit {report["commit"]}, '
           f'{report["wall_seconds"] / 60:.1f} min on {report["platform"].upper()}. '
           f'Corpus: one text file, the first {corpus["files"]} files of the Python '
           f'standard library ({corpus["bytes"]:,} bytes, `{corpus["first"]}` to '
           f'`{corpus["last"]}`), its last {corpus["validation_fraction"]:g} the '
           f'validation split. Model: a plain GPT, {report["num_layers"]} layers, '
           f'd_model {report["d_model"]}, rows of {report["row_tokens"]} tokens, '
           f'batches of {report["batch_size"]}, {report["steps"]} steps (about '
           f'{report["epochs"]:.1f} epochs of the train split). Validation bits per byte '
           f'on the whole validation split, mean ± std over seeds {report["seeds"]}.', '',
           '| rows | data.shuffle_window_tokens | '
           + ' | '.join(f'step {s}' for s in steps)
           + ' | final, per seed | tokens/s | minutes a run |',
           '|---|---|' + '---|' * (len(steps) + 3)]
  for label, seeds in runs.items():
    curves = np.array([[bpb for _, bpb in run['validation_curve']] for run in seeds])
    cells = [_mean_std(curves[:, i]) for i in range(len(steps))]
    lines.append(f'| {label} | {seeds[0]["shuffle_window_tokens"]:,} | ' + ' | '.join(cells)
                 + ' | ' + ', '.join(f'{v:.3f}' for v in curves[:, -1])
                 + f' | {np.mean([r["tokens_per_second"] for r in seeds]):,.0f}'
                 + f' | {np.mean([r["seconds"] for r in seeds]) / 60:.1f} |')
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  start = time.perf_counter()
  workdir, steps = pathlib.Path(_WORKDIR.value), _STEPS.value
  text, paths = builders.stdlib_text(_CORPUS_BYTES.value)
  runs = {'in file order': [], 'mixed': []}
  with tempfile.TemporaryDirectory() as folder:
    corpus = pathlib.Path(folder) / 'stdlib.txt'
    corpus.write_text(text, encoding='utf-8')
    for seed in (int(s) for s in _SEEDS.value):
      for label, window_tokens in (('in file order', 0), ('mixed', None)):
        config = train_config(corpus, window_tokens, seed, steps, workdir / 'tfds')
        print(f'[batch_mixing] {label}, seed {seed}', flush=True)
        runs[label].append(train_one(config, workdir / label.replace(' ', '_') /
                                     f'seed{seed}'))
        print(f'[batch_mixing] {label}, seed {seed}: {runs[label][-1]}', flush=True)
  size = len(text.encode('utf-8'))
  row_tokens = config.model.segment_len * config.model.num_segments
  report = {'name': _NAME.value, **provenance(), 'platform': jax.devices()[0].platform,
            'wall_seconds': time.perf_counter() - start, 'steps': steps,
            'seeds': [int(s) for s in _SEEDS.value], 'num_layers': config.model.num_layers,
            'd_model': config.model.d_model, 'row_tokens': row_tokens,
            'batch_size': config.train.batch_size,
            'epochs': steps * config.train.batch_size * (row_tokens + 1)
                      / (size * (1 - config.data.validation_fraction)),
            'corpus': {'files': len(paths), 'bytes': size, 'first': paths[0],
                       'last': paths[-1],
                       'validation_fraction': config.data.validation_fraction},
            'runs': runs}
  write_results(_OUT.value, _NAME.value, report, markdown(report))
  print(f'[batch_mixing] wrote {_OUT.value}/{_NAME.value}.md, .json')


if __name__ == '__main__':
  host_memory.run(app.run, main)
