"""Facts in language far past the trained length: up to a million tokens of source
between the facts and the question.

  python experiments/facts_long.py --run=WORKDIR [--run=WORKDIR ...]
      [--distances=4,39,390,3906] [--rows=40] [--chunk_segments=256]
      [--out=experiments/results] [--name=facts_long]

Scores models trained by `experiments/ablate.py --grid=facts_streams` (each --run is one
run's workdir, e.g. runs/facts_streams/facts/curriculum/seed0) on the facts task's
evaluation documents of distance D: the facts over the first context segments, D
segments of the standard library's source, the question ending the last segment (3,906
segments of 256 tokens: 1M tokens). They are the same documents as the distance splits
the grid evaluates (synthetic.make_example), the first --rows of each, made without
TFDS, held one byte a token, and fed --chunk_segments segments per call
(MemGPT.run_segments, the state carried from call to call): nothing in the model's
evaluation grows with D but the time. Each (run, D) is scored in a process of its own,
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
import jax.numpy as jnp
import numpy as np

from memgpt_jax import host_memory, losses, sampling
from memgpt_jax.errors import UserError
from memgpt_jax.provenance import provenance, write_results
from memgpt_jax.data import synthetic

ROOT = pathlib.Path(__file__).resolve().parents[1]
_RUNS = flags.DEFINE_multi_string('run', [], 'Workdir of a facts_streams run; repeatable.')
_DISTANCES = flags.DEFINE_list('distances', ['4', '39', '390', '3906'],
                               'Segments from the facts to the question.')
_ROWS = flags.DEFINE_integer('rows', 40, 'Documents per distance (one batch).')
_CHUNK = flags.DEFINE_integer('chunk_segments', 256, 'Segments fed per call.')
_OUT = flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
_NAME = flags.DEFINE_string('name', 'facts_long', 'Results file name.')
# Internal: score one workdir at one distance, print one JSON line.
_SCORE = flags.DEFINE_string('score', None, 'Workdir to score (runs in a child process).')
_DISTANCE = flags.DEFINE_integer('distance', 0, 'With --score: the distance.')


def documents(task, segment_len: int, distance: int, rows: int):
  """(tokens uint8 [rows, L + 1], answer positions) of the first `rows` documents of the
  distance split; every answer lies in the last segment (the question's)."""
  split = synthetic.eval_split(distance)
  examples = [synthetic.make_example('facts', task, segment_len, 0, split, index)
              for index in range(rows)]
  tokens = np.stack([e['tokens'].astype(np.uint8) for e in examples])
  answers = np.stack([e['answers'] for e in examples])
  last_segment = tokens.shape[1] - 1 - segment_len
  if answers[:, :last_segment].any():
    raise ValueError(f'distance {distance}: an answer lies before the last segment')
  return tokens, answers[:, last_segment:]


def score(workdir: str, distance: int, rows: int, chunk_segments: int) -> dict:
  """Answer accuracy on `rows` documents of distance `distance`, each read from its
  first token with the state carried; with the time it took and the peak memory."""
  start = time.perf_counter()
  decoder, _, config = sampling.load_decoder(workdir)
  if config.data.source != 'facts':
    raise UserError(f'{workdir} was trained on data.source={config.data.source!r}, '
                    'not the facts task')
  model, params = decoder.model, decoder.params
  segment_len = model.cfg.segment_len
  tokens, answers = documents(config.data.task, segment_len, distance, rows)
  before = tokens.shape[1] - 1 - segment_len  # tokens before the question's segment

  @jax.jit
  def advance(state, chunk):  # only the state: the outputs before the question are unused
    return model.apply(params, chunk, state, method=model.run_segments)[0]

  @jax.jit
  def question_segment(state, inputs, targets, mask):
    output = model.apply(params, inputs, state, method=model.run_segments)[1]
    return losses.eval_sums(output, targets, mask)

  state = jax.jit(lambda: model.apply(params, rows, method=model.initial_state))()
  for position in range(0, before, chunk_segments * segment_len):
    stop = min(position + chunk_segments * segment_len, before)
    state = advance(state, jnp.asarray(tokens[:, position:stop], jnp.int32))
  last = jnp.asarray(tokens[:, before:], jnp.int32)
  mask = jnp.asarray(answers[:, 1:], jnp.float32)  # an answer is predicted one token before
  sums = jax.device_get(question_segment(state, last[:, :-1], last[:, 1:], mask))
  return {'distance': distance, 'document_tokens': tokens.shape[1] - 1, 'rows': rows,
          'answers': int(sums['tokens']), 'accuracy': float(sums['correct'] / sums['tokens']),
          'seconds': time.perf_counter() - start,
          # ru_maxrss is in KiB on Linux.
          'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _score_in_child(workdir: str, distance: int) -> dict:
  command = [sys.executable, __file__, f'--score={workdir}', f'--distance={distance}',
             f'--rows={_ROWS.value}', f'--chunk_segments={_CHUNK.value}']
  result = subprocess.run(command, capture_output=True, text=True, check=False)
  if result.returncode:
    raise RuntimeError(f'scoring {workdir} at distance {distance} failed:\n'
                       f'{result.stderr[-3000:]}')
  return json.loads(result.stdout.strip().splitlines()[-1])


def _label(workdir: pathlib.Path) -> str:
  """The run's label in its ablation result, else its directory."""
  result = workdir / 'result.json'
  if result.is_file():
    saved = json.loads(result.read_text())
    return f'{saved["label"]} seed {saved["seed"]}'
  return str(workdir)


def markdown(report: dict) -> str:
  distances, segment_len = report['distances'], report['segment_len']
  lines = [f'# Facts far past the trained length: {report["name"]}', '',
           f'`{report["command"]}` at commit {report["commit"]}, '
           f'{report["wall_seconds"] / 60:.1f} min on {report["platform"].upper()}. '
           f'Each model is scored on the first {report["rows"]} evaluation documents of '
           'each distance D (segments of source between the facts and the question), '
           'read from the first token with the state carried. Answer accuracy %, '
           f'chance {100 * report["chance"]:.1f}% (the answers scored are in brackets).', '',
           '| run | ' + ' | '.join(f'D={d} ({d * segment_len:,} tokens)' for d in distances)
           + ' |', '|---|' + '---|' * len(distances)]
  for label, scored in report['results'].items():
    cells = [f'{100 * scored[str(d)]["accuracy"]:.1f} ({scored[str(d)]["answers"]})'
             for d in distances]
    lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
  lines += ['', 'Cost of one evaluation (one process: restore, make the documents, compile, '
            f'{report["rows"]} documents side by side; the documents are held, one byte a '
            'token), mean over runs:', '',
            '| D | document tokens | seconds | peak resident memory (MiB) |', '|---|---|---|---|']
  every = list(report['results'].values())
  for d in distances:
    scored = [r[str(d)] for r in every]
    lines.append(f'| {d} | {scored[0]["document_tokens"]:,} | '
                 f'{np.mean([s["seconds"] for s in scored]):.1f} | '
                 f'{np.mean([s["peak_rss_mib"] for s in scored]):.0f} |')
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if _SCORE.value:
    print(json.dumps(score(_SCORE.value, _DISTANCE.value, _ROWS.value, _CHUNK.value)))
    return
  if not _RUNS.value:
    raise UserError('name at least one trained run: --run=WORKDIR')
  start = time.perf_counter()
  distances = [int(d) for d in _DISTANCES.value]
  results, config = {}, None
  for workdir in map(pathlib.Path, _RUNS.value):
    _, _, config = sampling.load_decoder(workdir)
    label, results[_label(workdir)] = _label(workdir), {}
    for distance in distances:
      results[label][str(distance)] = _score_in_child(str(workdir), distance)
      print(f'[facts_long] {label} D={distance}: {results[label][str(distance)]}', flush=True)
  report = {'name': _NAME.value, **provenance(), 'platform': jax.devices()[0].platform,
            'wall_seconds': time.perf_counter() - start, 'rows': _ROWS.value,
            'chunk_segments': _CHUNK.value, 'segment_len': config.model.segment_len,
            'chance': synthetic.chance_accuracy('facts', config.data.task),
            'distances': distances, 'results': results}
  write_results(_OUT.value, _NAME.value, report, markdown(report))
  print(f'[facts_long] wrote {_OUT.value}/{_NAME.value}.md, .json')


if __name__ == '__main__':
  host_memory.run(app.run, main)
