"""Facts in language far past the trained length: up to a million tokens of source
between the facts and the question.

  python experiments/facts_long.py --run=WORKDIR [--run=WORKDIR ...]
      [--distances=4,39,390,3906] [--offsets=0] [--rows=40] [--chunk_segments=16]
      [--out=experiments/results] [--name=facts_long]

Scores models trained by `experiments/ablate.py --grid=facts_streams` (each --run is one
run's workdir, e.g. runs/facts_streams/facts/curriculum/seed0) on the facts task's
evaluation documents of distance D: the facts over the first context segments, D
segments of the standard library's source, the question ending the last segment (3,906
segments of 256 tokens: 1M tokens). They are the same documents as the distance splits
the grid evaluates (synthetic.make_example), the first --rows of each, made without
TFDS, held one byte a token, and fed --chunk_segments segments per call
(MemGPT.run_segments, the state carried from call to call): nothing in the model's
evaluation grows with D but the time. With --offsets=k, each document follows k tokens
of source, so that it starts k tokens into a segment (the grid's documents all start
one; training's streams start anywhere). Each (run, D) is scored in a process of its own,
which reports its wall time and peak resident memory. Writes <out>/<name>.md and .json.
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

from memgpt_jax import host_memory, sampling
from memgpt_jax.errors import UserError
from memgpt_jax.provenance import provenance, write_results
from memgpt_jax.data import synthetic
from memgpt_jax.training import evaluation
from memgpt_jax.training import workdir as workdir_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
_RUNS = flags.DEFINE_multi_string('run', [], 'Workdir of a facts_streams run; repeatable.')
_DISTANCES = flags.DEFINE_list('distances', ['4', '39', '390', '3906'],
                               'Segments from the facts to the question.')
_OFFSETS = flags.DEFINE_list('offsets', ['0'], 'Tokens of source before each document '
                             '(where in a segment it starts); each distance at each.')
_ROWS = flags.DEFINE_integer('rows', 40, 'Documents per distance (one batch).')
_CHUNK = flags.DEFINE_integer('chunk_segments', 16, 'Segments fed per call.')
_OUT = flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
_NAME = flags.DEFINE_string('name', 'facts_long', 'Results file name.')
# Internal: score one workdir at one distance and offset, print one JSON line.
_SCORE = flags.DEFINE_string('score', None, 'Workdir to score (runs in a child process).')
_DISTANCE = flags.DEFINE_integer('distance', 0, 'With --score: the distance.')
_OFFSET = flags.DEFINE_integer('offset', 0, 'With --score: the offset.')


def score(workdir: str, distance: int, rows: int, chunk_segments: int, offset: int) -> dict:
  """Answer accuracy on `rows` documents of distance `distance` (after `offset` tokens),
  each read from its first token with the state carried; with the time it took and the
  peak memory. Only the segments from the first answer's on are scored."""
  began = time.perf_counter()
  decoder, _, config = sampling.load_decoder(workdir)
  if config.data.source != 'facts':
    raise UserError(f'{workdir} was trained on data.source={config.data.source!r}, '
                    'not the facts task')
  model, params = decoder.model, decoder.params
  segment_len = model.cfg.segment_len
  tokens, answers = synthetic.facts_documents(config.data.task, segment_len, distance, rows,
                                            offset)
  first_input = np.flatnonzero(answers.any(0))[0] - 1  # an answer is predicted one before
  start = first_input // segment_len * segment_len
  sums = evaluation.score_after_reading(model, params, lambda a, b: tokens[:, a:b],
                                        tokens.shape[1], start, answers[:, start + 1:],
                                        chunk_segments)
  return {'distance': distance, 'offset': offset,
          'document_tokens': tokens.shape[1] - 1 - offset, 'rows': rows,
          'answers': int(sums['tokens']), 'accuracy': float(sums['correct'] / sums['tokens']),
          'seconds': time.perf_counter() - began,
          # ru_maxrss is in KiB on Linux.
          'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _score_in_child(workdir: str, distance: int, offset: int) -> dict:
  command = [sys.executable, __file__, f'--score={workdir}', f'--distance={distance}',
             f'--offset={offset}', f'--rows={_ROWS.value}', f'--chunk_segments={_CHUNK.value}']
  result = subprocess.run(command, capture_output=True, text=True, check=False)
  if result.returncode:
    raise RuntimeError(f'scoring {workdir} at distance {distance}, offset {offset} failed:\n'
                       f'{result.stderr[-3000:]}')
  return json.loads(result.stdout.strip().splitlines()[-1])


def _key(distance: int, offset: int) -> str:
  return f'{distance}@{offset}'


def _label(workdir: pathlib.Path) -> str:
  """The run's label in its ablation result, else the end of its path (label/seedN)."""
  result = workdir / 'result.json'
  if result.is_file():
    saved = json.loads(result.read_text())
    return f'{saved["label"]} seed {saved["seed"]}'
  return '/'.join(workdir.resolve().parts[-3:])


def markdown(report: dict) -> str:
  distances, offsets = report['distances'], report['offsets']
  segment_len, results = report['segment_len'], report['results']
  lines = [f'# Facts far past the trained length: {report["name"]}', '',
           f'`{report["command"]}` at commit {report["commit"]}, '
           f'{report["wall_seconds"] / 60:.1f} min on {report["platform"].upper()}. '
           f'Each model is scored on the first {report["rows"]} evaluation documents of '
           'each distance D (segments of source between the facts and the question), '
           'read from the first token with the state carried. Answer accuracy %, '
           f'chance {100 * report["chance"]:.1f}% (the answers scored in brackets).']
  for offset in offsets:
    where = ('each document starts a segment' if not offset else
             f'each document starts {offset} tokens into a segment, after source')
    lines += ['', f'{where}:', '',
              '| run | ' + ' | '.join(f'D={d} ({d * segment_len:,} tokens)' for d in distances)
              + ' |', '|---|' + '---|' * len(distances)]
    for label, scored in results.items():
      cells = [scored[_key(d, offset)] for d in distances]
      lines.append(f'| {label} | ' + ' | '.join(
          f'{100 * c["accuracy"]:.1f} ({c["answers"]})' for c in cells) + ' |')
  lines += ['', 'Cost of one evaluation (one process: restore, make the documents, compile, '
            f'{report["rows"]} documents side by side; the documents are held, one byte a '
            f'token), offset {offsets[0]}, mean over runs:', '',
            '| D | document tokens | seconds | peak resident memory (MiB) |', '|---|---|---|---|']
  for d in distances:
    scored = [r[_key(d, offsets[0])] for r in results.values()]
    lines.append(f'| {d} | {scored[0]["document_tokens"]:,} | '
                 f'{np.mean([s["seconds"] for s in scored]):.1f} | '
                 f'{np.mean([s["peak_rss_mib"] for s in scored]):.0f} |')
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if _SCORE.value:
    print(json.dumps(score(_SCORE.value, _DISTANCE.value, _ROWS.value, _CHUNK.value,
                           _OFFSET.value)))
    return
  if not _RUNS.value:
    raise UserError('name at least one trained run: --run=WORKDIR')
  start = time.perf_counter()
  distances = [int(d) for d in _DISTANCES.value]
  offsets = [int(k) for k in _OFFSETS.value]
  results, config = {}, None
  for workdir in map(pathlib.Path, _RUNS.value):
    config = workdir_lib.saved_config(workdir)
    label = _label(workdir)
    results[label] = {}
    for offset in offsets:
      for distance in distances:
        scored = results[label][_key(distance, offset)] = _score_in_child(
            str(workdir), distance, offset)
        print(f'[facts_long] {label} D={distance} offset {offset}: {scored}', flush=True)
  report = {'name': _NAME.value, **provenance(), 'platform': jax.devices()[0].platform,
            'wall_seconds': time.perf_counter() - start, 'rows': _ROWS.value,
            'chunk_segments': _CHUNK.value, 'segment_len': config.model.segment_len,
            'chance': synthetic.chance_accuracy('facts', config.data.task),
            'distances': distances, 'offsets': offsets, 'results': results}
  write_results(_OUT.value, _NAME.value, report, markdown(report))
  print(f'[facts_long] wrote {_OUT.value}/{_NAME.value}.md, .json')


if __name__ == '__main__':
  host_memory.run(app.run, main)
