"""Passkey retrieval far past the trained length: 10K, 100K and 1M tokens of filler.

  python experiments/passkey_long.py [--model=delta --model=slots ...] [--seeds=0,1,2]
      [--lengths=10000,100000,1000000] [--rows=32] [--steps=1500]
      [--workdir=runs/passkey_long] [--out=experiments/results] [--name=passkey_long]

Trains configs/synthetic.py (with the variant of each memory kind) on the passkey task,
rows of at most 4 segments, once per (kind, seed); then scores each model on rows with
about L tokens of filler between the key and the query. The rows are made a slice at
a time (synthetic.PasskeyStream) and fed --chunk_segments segments per call
(MemGPT.run_segments, the memory carried from call to call), so nothing grows with L
but the time. Each (model, L) runs in a process of its own, which reports its wall
time and peak resident memory. Writes <out>/<name>.md and .json.
"""

import json
import pathlib
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

from memgpt_jax import config_lib, sampling
from memgpt_jax import host_memory
from memgpt_jax.provenance import provenance, write_results
from memgpt_jax.data import synthetic
from memgpt_jax.training import evaluation, trainer

ROOT = pathlib.Path(__file__).resolve().parents[1]
_MODELS = flags.DEFINE_multi_string(
    'model', ['delta'], "Models to train and score: 'delta' (configs/synthetic.py) or its "
    "variants, e.g. --model=slots --model=wide_keys,first_layer; repeatable.")
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Training seeds.')
_LENGTHS = flags.DEFINE_list('lengths', ['10000', '100000', '1000000'],
                             'Filler tokens between the key and the query.')
_ROWS = flags.DEFINE_integer('rows', 32, 'Evaluation rows per length (one batch).')
_STEPS = flags.DEFINE_integer('steps', 1500, 'Training steps.')
_CHUNK = flags.DEFINE_integer('chunk_segments', 256, 'Segments fed per call.')
_WORKDIR = flags.DEFINE_string('workdir', str(ROOT / 'runs' / 'passkey_long'), 'Runs.')
_OUT = flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
_NAME = flags.DEFINE_string('name', 'passkey_long', 'Results file name.')
# Internal: score one trained workdir at one length, print one JSON line.
_SCORE = flags.DEFINE_string('score', None, 'Workdir to score (runs in a child process).')
_FILLER = flags.DEFINE_integer('filler', 0, 'With --score: filler tokens.')


def train_config(variants: str, seed: int, steps: int, data_dir: pathlib.Path):
  """configs/synthetic.py on the passkey task: rows of 4 segments, queries at D = 0..3."""
  path = ROOT / 'configs' / 'synthetic.py'
  config = config_lib.load_config(path if variants == 'delta' else f'{path}:{variants}')
  config.data.source = 'passkey'
  config.train.num_steps = steps
  config.seed = config.data.shuffle_seed = seed
  config.data.tfds_data_dir = str(data_dir)
  return config


def score(workdir: str, filler: int, rows: int, chunk_segments: int) -> dict:
  """Answer accuracy on `rows` streams of ~`filler` filler tokens, fed segment by
  segment; with the time it took and the process's peak memory."""
  began = time.perf_counter()
  decoder, _, config = sampling.load_decoder(workdir)
  model, params = decoder.model, decoder.params
  segment_len = model.cfg.segment_len
  segments = max(1, round(filler / segment_len)) + 1  # the query's segment is the last
  streams = [synthetic.passkey_stream(config.data.task, segment_len, segments, i)
             for i in range(rows)]

  start = (segments - 1) * segment_len  # the query's segment
  mask = np.zeros((rows, segment_len), np.float32)
  mask[:, streams[0].answers - start - 1] = 1.0  # answer a is the target at a - 1
  sums = evaluation.score_after_reading(
      model, params, lambda a, b: np.stack([s.tokens(a, b) for s in streams]),
      segments * segment_len + 1, start, mask, chunk_segments)
  return {'filler_tokens': (segments - 1) * segment_len, 'row_tokens': segments * segment_len,
          'rows': rows, 'answers': int(sums['tokens']),
          'accuracy': float(sums['correct'] / sums['tokens']),
          'seconds': time.perf_counter() - began,
          # ru_maxrss is in KiB on Linux.
          'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _score_in_child(workdir: pathlib.Path, filler: int) -> dict:
  command = [sys.executable, __file__, f'--score={workdir}', f'--filler={filler}',
             f'--rows={_ROWS.value}', f'--chunk_segments={_CHUNK.value}']
  result = subprocess.run(command, capture_output=True, text=True, check=False)
  if result.returncode:
    raise RuntimeError(f'scoring {workdir} at {filler} failed:\n{result.stderr[-3000:]}')
  return json.loads(result.stdout.strip().splitlines()[-1])


def _mean_std(values: list[float]) -> str:
  return f'{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}'


def markdown(report: dict) -> str:
  lengths = report['lengths']
  lines = [f'# Passkey retrieval at long range: {report["name"]}', '',
           f'`{report["command"]}` at commit {report["commit"]}, '
           f'{report["wall_seconds"] / 60:.1f} min on {report["platform"].upper()}. '
           'Models: configs/synthetic.py on the passkey task (5 digits, chance 10%), '
           f'trained {report["steps"]} steps on rows of 4 segments of '
           f'{report["segment_len"]} tokens (128 tokens); each is scored on '
           f'{report["rows"]} rows with the filler below between the key and its query, '
           'fed segment by segment. Accuracy over the answer digits, %, mean ± std over '
           f'seeds {report["seeds"]}.', '',
           '| memory | ' + ' | '.join(f'{int(n):,} filler tokens' for n in lengths) + ' |',
           '|---|' + '---|' * len(lengths)]
  for kind, runs in report['results'].items():
    cells = [_mean_std([r[str(n)]['accuracy'] for r in runs]) for n in lengths]
    lines.append(f'| {kind} | ' + ' | '.join(cells) + ' |')
  lines += ['', 'Cost of one evaluation (one process: restore, compile, '
            f'{report["rows"]} rows), mean over models:', '',
            '| filler tokens | row tokens | seconds | peak resident memory (MiB) |',
            '|---|---|---|---|']
  every = [r for runs in report['results'].values() for r in runs]
  for n in lengths:
    scored = [r[str(n)] for r in every]
    lines.append(f'| {int(n):,} | {scored[0]["row_tokens"]:,} | '
                 f'{np.mean([s["seconds"] for s in scored]):.1f} | '
                 f'{np.mean([s["peak_rss_mib"] for s in scored]):.0f} |')
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if _SCORE.value:
    print(json.dumps(score(_SCORE.value, _FILLER.value, _ROWS.value, _CHUNK.value)))
    return
  start = time.perf_counter()
  workdir, lengths = pathlib.Path(_WORKDIR.value), [int(n) for n in _LENGTHS.value]
  results = {}
  for kind in _MODELS.value:
    results[kind] = []
    for seed in (int(s) for s in _SEEDS.value):
      run_dir = workdir / kind.replace(',', '+') / f'seed{seed}'
      config = train_config(kind, seed, _STEPS.value, workdir / 'tfds')
      print(f'[passkey_long] training {kind} seed {seed}', flush=True)
      trainer.train_and_evaluate(config, run_dir)
      scored = {}
      for filler in lengths:
        scored[str(filler)] = _score_in_child(run_dir, filler)
        print(f'[passkey_long] {kind} seed {seed} {filler:,} filler tokens: '
              f'{scored[str(filler)]}', flush=True)
      results[kind].append(scored)
  report = {'name': _NAME.value, **provenance(), 'platform': jax.devices()[0].platform,
            'wall_seconds': time.perf_counter() - start, 'steps': _STEPS.value,
            'segment_len': config.model.segment_len, 'rows': _ROWS.value,
            'seeds': [int(s) for s in _SEEDS.value], 'lengths': lengths,
            'results': results}
  write_results(_OUT.value, _NAME.value, report, markdown(report))
  print(f'[passkey_long] wrote {_OUT.value}/{_NAME.value}.md, .json')


if __name__ == '__main__':
  host_memory.run(app.run, main)
