"""kill -9 a training run at random moments, resume it each time, and compare the end
with a run that was never interrupted.

  python experiments/soak.py [--kills=20] [--steps=2000] [--seed=0]
      [--workdir=runs/soak] [--out=experiments/results] [--name=soak]

Both runs are `memgpt-train` processes on configs/tiny.py (asynchronous checkpoints
every --checkpoint_every steps), each with its own TFDS data folder, so a kill may
land while the data is being prepared, while the model compiles, mid-step, or in the
middle of an asynchronous save. Each moment is drawn uniformly from [0, a restarted
run's start-up + the time of twice its share of the steps left] (the steps left over
the kills left, timed by the uninterrupted run); the run ends with one attempt that
is not killed. What must hold, and is written to <out>/<name>.md and .json:
- every step is logged once in metrics.jsonl, with the uninterrupted run's loss;
- the final parameters equal the uninterrupted run's;
- no lock file and no half-written checkpoint is left behind.
"""

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

from absl import app
from absl import flags
import jax
import numpy as np

from memgpt_jax import host_memory
from memgpt_jax.provenance import provenance, write_results
from memgpt_jax.training import checkpointing
from memgpt_jax.training import workdir as workdir_lib
from memgpt_jax.training.metrics_writer import read_metrics

ROOT = pathlib.Path(__file__).resolve().parents[1]
_KILLS = flags.DEFINE_integer('kills', 20, 'kill -9 this many times (fewer if the run '
                              'ends first).')
_STEPS = flags.DEFINE_integer('steps', 2000, 'Training steps of the run.')
_CHECKPOINT_EVERY = flags.DEFINE_integer('checkpoint_every', 7, 'Steps between saves.')
_SEED = flags.DEFINE_integer('seed', 0, 'Draws the kill moments.')
_WORKDIR = flags.DEFINE_string('workdir', str(ROOT / 'runs' / 'soak'), 'Scratch folder.')
_OUT = flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
_NAME = flags.DEFINE_string('name', 'soak', 'Results file name.')

_ATTEMPT_TIMEOUT_S = 600


def train_command(workdir: pathlib.Path, data_dir: pathlib.Path) -> list[str]:
  return [sys.executable, '-m', 'memgpt_jax.cli.train', '--config=configs/tiny.py',
          f'--workdir={workdir}', f'--config.data.tfds_data_dir={data_dir}',
          f'--config.train.num_steps={_STEPS.value}', '--config.train.log_every=1',
          f'--config.train.checkpoint_every={_CHECKPOINT_EVERY.value}',
          f'--config.train.eval_every={_STEPS.value}',
          '--config.train.async_checkpointing=True', '--nosample']


def environment(scratch: pathlib.Path) -> dict[str, str]:
  """One XLA compilation cache for every attempt: a restart compiles from the cache,
  so more of the kills land after start-up."""
  return dict(os.environ, JAX_PLATFORMS='cpu',
              JAX_COMPILATION_CACHE_DIR=str(scratch / 'xla_cache'),
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0')


def latest_step(workdir: pathlib.Path) -> int:
  """The newest finished save's step (0: none)."""
  return max(checkpointing.finished_steps(workdir / workdir_lib.CHECKPOINTS), default=0)


def logged_steps(workdir: pathlib.Path) -> int:
  path = workdir / workdir_lib.METRICS
  return path.read_text().count('\n') if path.exists() else 0


def uninterrupted(workdir: pathlib.Path, data_dir: pathlib.Path, env: dict) -> dict:
  """Runs to the end; times the start-up (to the first logged step) and each step."""
  start = time.perf_counter()
  log = workdir.with_suffix('.log')
  with log.open('w') as output:
    process = subprocess.Popen(train_command(workdir, data_dir), cwd=ROOT, env=env,
                               stdout=output, stderr=subprocess.STDOUT)
    first_step = None
    while process.poll() is None:
      if first_step is None and logged_steps(workdir):
        first_step = time.perf_counter() - start
      time.sleep(0.05)
  if process.returncode != 0:
    raise RuntimeError(f'the uninterrupted run failed (status {process.returncode}): {log}')
  seconds = time.perf_counter() - start
  restart = time.perf_counter()  # A finished run restarted only evaluates: a warm start-up.
  subprocess.run(train_command(workdir, data_dir), cwd=ROOT, env=env, check=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  return {'seconds': seconds, 'startup_seconds': first_step,
          'restart_seconds': time.perf_counter() - restart,
          'step_seconds': (seconds - first_step) / _STEPS.value}


def killed_attempt(workdir: pathlib.Path, data_dir: pathlib.Path, env: dict,
                   after: float) -> dict:
  """Starts a resuming run and sends it SIGKILL `after` seconds later (unless it ends)."""
  before = latest_step(workdir)
  start = time.perf_counter()
  log = workdir.with_suffix('.log')
  with log.open('w') as output:
    process = subprocess.Popen(train_command(workdir, data_dir), cwd=ROOT, env=env,
                               stdout=output, stderr=subprocess.STDOUT)
    try:
      process.wait(timeout=after)
      killed = False
    except subprocess.TimeoutExpired:
      process.send_signal(signal.SIGKILL)
      process.wait()
      killed = True
  if not killed and process.returncode != 0:
    raise RuntimeError(f'a resumed run failed (status {process.returncode}): {log}')
  return {'after_seconds': round(after, 2), 'killed': killed,
          'seconds': round(time.perf_counter() - start, 2), 'checkpoint_before': before,
          'checkpoint_after': latest_step(workdir), 'logged_after': logged_steps(workdir),
          'resumed_line': 'resuming from step' in log.read_text()}


def final_params(workdir: pathlib.Path):
  step_dir = workdir / workdir_lib.CHECKPOINTS / str(latest_step(workdir))
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return workdir_lib.read_model(step_dir, workdir, device)[1]


def compare(reference: pathlib.Path, soaked: pathlib.Path) -> dict:
  """What must hold after the soak (module docstring), measured."""
  want = {r['step']: r['loss'] for r in read_metrics(reference, 'train')}
  records = read_metrics(soaked, 'train')
  got = {r['step']: r['loss'] for r in records}
  common = sorted(want.keys() & got.keys())
  params = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in zip(
      jax.tree.leaves(final_params(reference)), jax.tree.leaves(final_params(soaked)),
      strict=True)]
  leftovers = sorted(str(p.relative_to(soaked)) for p in soaked.rglob('*')
                     if p.name == workdir_lib.LOCK or 'orbax-checkpoint-tmp' in p.name)
  return {'steps_logged': len(records), 'steps_expected': _STEPS.value,
          'every_step_once': sorted(r['step'] for r in records) == list(
              range(1, _STEPS.value + 1)),
          'max_loss_difference': float(max(abs(want[s] - got[s]) for s in common)),
          'max_parameter_difference': float(max(params)), 'leftovers': leftovers}


def markdown(report: dict) -> str:
  result, base = report['result'], report['uninterrupted']
  kills = [a for a in report['attempts'] if a['killed']]
  verdict = ('PASS' if result['every_step_once'] and result['max_loss_difference'] == 0
             and result['max_parameter_difference'] == 0 and not result['leftovers']
             else 'FAIL')
  lines = [f'# Soak: {report["name"]}', '',
           f'`{report["command"]}` at commit {report["commit"]}, '
           f'{report["wall_seconds"] / 60:.1f} min on CPU. configs/tiny.py for '
           f'{report["steps"]} steps, asynchronous checkpoints every '
           f'{report["checkpoint_every"]} steps; the uninterrupted run took '
           f'{base["seconds"]:.1f} s ({base["startup_seconds"]:.1f} s to its first step; a '
           f'restart {base["restart_seconds"]:.1f} s to its end). '
           f'{len(kills)} kill -9 at moments drawn with seed {report["seed"]}, then one '
           'attempt to the end.', '',
           f'**{verdict}**: every step logged once: {result["every_step_once"]} '
           f'({result["steps_logged"]} of {result["steps_expected"]}); largest difference '
           f'from the uninterrupted run: loss {result["max_loss_difference"]:.3g}, '
           f'parameters {result["max_parameter_difference"]:.3g}; left behind: '
           f'{", ".join(result["leftovers"]) or "nothing"}.', '',
           '| attempt | killed after s | checkpoint before | checkpoint after | metrics lines '
           'after | said "resuming" |', '|---|---|---|---|---|---|']
  for index, attempt in enumerate(report['attempts'], 1):
    after = f'{attempt["after_seconds"]:.2f}' if attempt['killed'] else '(ran to the end)'
    lines.append(f'| {index} | {after} | {attempt["checkpoint_before"]} | '
                 f'{attempt["checkpoint_after"]} | {attempt["logged_after"]} | '
                 f'{"yes" if attempt["resumed_line"] else "no"} |')
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  start = time.perf_counter()
  scratch = pathlib.Path(_WORKDIR.value)
  shutil.rmtree(scratch, ignore_errors=True)
  scratch.mkdir(parents=True)
  env = environment(scratch)
  reference, soaked = scratch / 'uninterrupted', scratch / 'killed'
  base = uninterrupted(reference, scratch / 'tfds_uninterrupted', env)
  print(f'[soak] uninterrupted: {base}', flush=True)
  rng = np.random.default_rng(_SEED.value)
  attempts = []
  while (kills_left := _KILLS.value - sum(a['killed'] for a in attempts)) > 0:
    share = 2 * (_STEPS.value - latest_step(soaked)) / kills_left
    after = rng.uniform(0, base['restart_seconds'] + share * base['step_seconds'])
    attempts.append(killed_attempt(soaked, scratch / 'tfds_killed', env, after))
    print(f'[soak] {attempts[-1]}', flush=True)
    if not attempts[-1]['killed']:
      break
  if attempts[-1]['killed']:
    attempts.append(killed_attempt(soaked, scratch / 'tfds_killed', env, _ATTEMPT_TIMEOUT_S))
    print(f'[soak] {attempts[-1]}', flush=True)
  report = {'name': _NAME.value, **provenance(), 'wall_seconds': time.perf_counter() - start,
            'steps': _STEPS.value, 'checkpoint_every': _CHECKPOINT_EVERY.value,
            'seed': _SEED.value, 'uninterrupted': base, 'attempts': attempts,
            'result': compare(reference, soaked)}
  write_results(_OUT.value, _NAME.value, report, markdown(report))
  print(markdown(report))


if __name__ == '__main__':
  host_memory.run(app.run, main)
