"""Kernel time of whole memgpt-train processes, this checkout alone or against another copy
of the code (--baseline, e.g. `git worktree add /tmp/base <commit>`), the two taking turns.

  python experiments/kernel_time.py [--baseline=DIR] [--rounds=3] [--text=FILE]
      [--shapes=laptop,default,tiny,tiny_steps] [--out=experiments/results]
      [--name=kernel_time]

Shapes, each run as `python -m memgpt_jax.cli.train` in a fresh workdir from the
root of each copy, with the same interpreter: `laptop` (configs/baseline_gpt.py at 4
layers, d_model 128, gelu, layernorm, learned positions, batches of 12 rows of 64
tokens in one batch, on one text file), `default` (configs/default.py, what make train
runs, fewer steps), `tiny` (configs/tiny.py, one layer) and `tiny_steps` (the same with
checkpoints and evaluations as rare as default.py's); and, when named, `tiny_start`
(tiny_steps for one step: the start-up, the first compilation, one evaluation and one
checkpoint) and `tiny_long` (tiny_steps for 10,000 steps). Each run's user and system
seconds, minor page faults, context switches and peak resident memory are the kernel's
accounting of the finished process (what /usr/bin/time -v prints); tokens/s is the
median of its logged windows after the first (which holds the compilation). With a
baseline, the rounds alternate the two copies (A B A B ...), so both see the same load
on a shared machine, and the speed-up is taken pair by pair. Writes <out>/<name>.md
and .json.
"""

import math
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

from memgpt_jax.data import builders
from memgpt_jax.provenance import provenance, write_results
from memgpt_jax.training.metrics_writer import read_metrics
from report import kernel_time_rows

ROOT = pathlib.Path(__file__).resolve().parents[1]
_BASELINE = flags.DEFINE_string('baseline', None, 'Root of the code to compare against; '
                                 'none: this checkout alone.')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'Runs of each copy at each shape.')
_TEXT = flags.DEFINE_string('text', '', 'The laptop shape\'s text file; empty: the first '
                            '1 MB of the standard library\'s source, written to a temp dir.')
_OUT = flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
_NAME = flags.DEFINE_string('name', 'kernel_time', 'Results file name.')

LAPTOP = ['--config=configs/baseline_gpt.py', '--config.model.num_layers=4',
          '--config.model.d_model=128', '--config.model.num_heads=4',
          '--config.model.mlp_dim=512', '--config.model.mlp_type=gelu',
          '--config.model.norm_type=layernorm', '--config.model.position=learned',
          '--config.model.segment_len=64', '--config.train.batch_size=12',
          '--config.train.grad_accum_steps=1', '--config.data.source=text',
          '--config.train.num_steps=1000']
TINY = ['--config=configs/tiny.py', '--config.train.num_steps=1000']
SHAPES = {'laptop': LAPTOP,
          'default': ['--config=configs/default.py', '--config.train.num_steps=60'],
          'tiny': TINY,
          # configs/tiny.py saves a checkpoint every 15 steps (for tests); here at
          # default.py's cadence, so the steps are measured rather than the saves.
          'tiny_steps': TINY + ['--config.train.checkpoint_every=150',
                                '--config.train.eval_every=150']}
# Where the tiny config's kernel time comes from: its start-up, and a run long enough
# for the steps to outweigh it.
SHAPES['tiny_start'] = SHAPES['tiny_steps'] + ['--config.train.num_steps=1']
SHAPES['tiny_long'] = SHAPES['tiny_steps'] + ['--config.train.num_steps=10000']
_SHAPES = flags.DEFINE_list('shapes', ['laptop', 'default', 'tiny', 'tiny_steps'],
                            'Which of the shapes to run.')


def run(tree: str, flags_: list[str]) -> dict:
  """One memgpt-train process from `tree`: the kernel's accounting of it and its tokens/s."""
  with tempfile.TemporaryDirectory() as workdir:
    command = [sys.executable, '-m', 'memgpt_jax.cli.train', f'--workdir={workdir}',
               '--sample=false', *flags_]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=tree, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if status:
      raise SystemExit(f'kernel_time: {" ".join(command)} in {tree} exited {status}')
    speeds = [r['tokens_per_second'] for r in read_metrics(workdir, 'train')
              if 'tokens_per_second' in r]
  cpu = usage.ru_utime + usage.ru_stime
  return {'wall_s': wall, 'user_s': usage.ru_utime, 'sys_s': usage.ru_stime,
          'sys_share': usage.ru_stime / cpu, 'minor_faults': usage.ru_minflt,
          'voluntary_switches': usage.ru_nvcsw, 'involuntary_switches': usage.ru_nivcsw,
          'peak_rss_mib': usage.ru_maxrss / 1024,
          # A run of one step logs no window after the compiling one.
          'tokens_per_second': float(np.median(speeds[1:])) if speeds[1:] else math.nan}


def summary(runs: list[dict]) -> dict:
  return {key: {'min': min(r[key] for r in runs), 'median': statistics.median(
      r[key] for r in runs), 'max': max(r[key] for r in runs)} for key in runs[0]}


def markdown(report: dict) -> str:
  copies = (f'the baseline the code of commit {report["baseline_commit"]}; '
            f'{report["rounds"]} runs of each at each shape, the two copies taking turns '
            '(interleaved, same machine)' if report['baseline_commit'] else
            f'{report["rounds"]} runs at each shape')
  lines = [f'# Kernel time of memgpt-train: {report["name"]}', '',
           f'`{report["command"]}` at commit {report["commit"]}, {copies}. Median '
           '(min-max) over the runs.', '', *kernel_time_rows(report)]
  return '\n'.join(lines) + '\n'


def default_text(folder: str) -> str:
  path = pathlib.Path(folder) / 'stdlib_1mb.txt'
  path.write_text(builders.stdlib_text(1_000_000)[0])
  return str(path)


def tree_commit(tree: str) -> str:
  """The commit a copy of the code is at ('+ changes' when its tracked files differ);
  provenance() names the checkout the package is imported from, which may be another."""
  git = lambda *args: subprocess.run(['git', *args], cwd=tree, capture_output=True,
                                     text=True, check=False).stdout.strip()
  commit = git('rev-parse', '--short', 'HEAD')
  changed = git('status', '--porcelain', '--untracked-files=no')
  return f'{commit} + changes' if commit and changed else commit or tree


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as folder:
    text = _TEXT.value or default_text(folder)
    trees = {'baseline': _BASELINE.value} if _BASELINE.value else {}
    trees['this'] = str(ROOT)
    shapes = {}
    for shape in _SHAPES.value:
      flags_ = SHAPES[shape] + ([f'--config.data.paths={text}'] if shape == 'laptop' else [])
      runs = {side: [] for side in trees}
      for _ in range(_ROUNDS.value):
        for side, tree in trees.items():
          runs[side].append(run(tree, flags_))
          print(f'[kernel_time] {shape} {side}: {runs[side][-1]}', flush=True)
      shapes[shape] = {side: {'flags': flags_, 'runs': r, 'summary': summary(r)}
                       for side, r in runs.items()}
  report = {'name': _NAME.value, **provenance(), 'commit': tree_commit(str(ROOT)),
            'baseline_commit': tree_commit(_BASELINE.value) if _BASELINE.value else None,
            'rounds': _ROUNDS.value,
            'shapes': shapes}
  write_results(_OUT.value, _NAME.value, report, markdown(report))
  print(markdown(report))


if __name__ == '__main__':
  app.run(main)
