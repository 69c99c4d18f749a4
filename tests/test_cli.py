"""The command-line programs as a user runs them: overrides, one-line errors, streaming."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT


def run(program: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable, '-m', f'memgpt_jax.cli.{program}', *args],
                        capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=env)


def error_line(result: subprocess.CompletedProcess) -> str:
  """Asserts a clean failure: status 2, no traceback, exactly one line on stderr."""
  assert result.returncode == 2, result.stderr
  assert 'Traceback' not in result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  return lines[0]


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def tiny(workdir, data_dir, *overrides):
  return ('--config=configs/tiny.py', f'--workdir={workdir}',
          f'--config.data.tfds_data_dir={data_dir}', *overrides)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, data_dir):
  """A real CLI run with dotted overrides; it ends by streaming a sample."""
  workdir = tmp_path_factory.mktemp('cli_run')
  result = run('train', *tiny(workdir, data_dir, '--config.train.num_steps=4',
                              '--config.model.num_layers=1', '--config.sample.prompt=import '))
  assert result.returncode == 0, result.stderr
  return workdir, result


def test_train_applies_overrides_and_prints_a_sample(trained):
  workdir, result = trained
  saved = json.loads((workdir / 'config.json').read_text())
  assert saved['model']['num_layers'] == 1 and saved['train']['num_steps'] == 4
  assert 'last validation: loss=' in result.stdout
  assert "--- sample (prompt 'import ') ---\nimport " in result.stdout


def test_sample_program_streams_from_the_workdir(trained, tmp_path):
  workdir, _ = trained
  prompt_file = tmp_path / 'prompt.txt'
  prompt_file.write_text('class A:\n')
  result = run('sample', f'--workdir={workdir}', f'--prompt_file={prompt_file}',
               '--max_new_tokens=10', '--temperature=0')
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith('class A:\n')
  batched = run('sample', f'--workdir={workdir}', '--prompt=x', '--max_new_tokens=5',
                '--num_samples=2', '--top_k=5', '--top_p=0.9', '--seed=3')
  assert batched.stdout.count('--- sample ') == 2, batched.stderr


@pytest.mark.parametrize('override,message', [
    ('--config.model.nope=3', "unknown config key 'model.nope'"),
    ('--config.model.num_heads=3', 'num_heads=3 does not divide model.d_model=32'),
    ('--config.model.memory.slots.num_slots=-1', 'num_slots=-1 must be >= 0'),
    ('--config.model.d_model=abc', 'd_model'),
    ('--config.data.source=text', 'data.paths is empty'),
    ('--config.data.paths=/nonexistent/*.txt', 'matches no file'),
    ('--config.data.task_metrics=bleu', "data.task_metrics='bleu' is not one of"),
    ('--config.data.task_metrics=exact_match', 'task_metrics needs a seq2seq source'),
    ('--config.data.source=tfds', 'data.tfds_name'),
])
def test_bad_training_input_is_one_line(tmp_path, data_dir, override, message):
  overrides = [override]
  if 'paths=' in override:
    overrides.append('--config.data.source=text')
  line = error_line(run('train', *tiny(tmp_path / 'w', data_dir, *overrides)))
  assert line.startswith('memgpt-train: error: ') and message in line
  assert not (tmp_path / 'w' / 'checkpoints').exists()


def test_empty_text_file_is_one_line(tmp_path, data_dir):
  (tmp_path / 'empty.txt').write_text('')
  line = error_line(run('train', *tiny(tmp_path / 'w', data_dir, '--config.data.source=text',
                                       f'--config.data.paths={tmp_path}/empty.txt')))
  assert 'empty' in line


def test_fine_tuning_from_another_shape_is_one_line(trained, data_dir, tmp_path):
  workdir, _ = trained
  line = error_line(run('train', *tiny(tmp_path / 'new', data_dir, f'--config.init_from={workdir}')))
  # The run there has one layer, this config two.
  assert line.startswith('memgpt-train: error: init_from: params/blocks_1/')
  assert not (tmp_path / 'new').exists()


def test_foreign_checkpoint_is_refused_without_touching_it(trained, data_dir):
  workdir, _ = trained
  before = {p: p.stat().st_mtime_ns for p in workdir.rglob('*')}
  line = error_line(run('train', *tiny(workdir, data_dir, '--config.model.num_layers=2')))
  assert 'another model shape (model.num_layers=1 there, 2 here)' in line
  assert {p: p.stat().st_mtime_ns for p in workdir.rglob('*')} == before


@pytest.mark.parametrize('args,message', [
    (('--prompt=',), 'prompt is empty'),
    (('--prompt=x', '--prompt_file=y'), 'exactly one of'),
    (('--prompt=x', '--inputs=y'), 'exactly one of'),
    (('--inputs=a report',), '--inputs is for seq2seq models'),
])
def test_bad_sampling_input_is_one_line(trained, args, message):
  workdir, _ = trained
  assert message in error_line(run('sample', f'--workdir={workdir}', *args))


def test_sampling_without_checkpoint_is_one_line(tmp_path):
  line = error_line(run('sample', f'--workdir={tmp_path}', '--prompt=def '))
  assert 'no checkpoint' in line


def test_sigterm_checkpoints_and_stops(tmp_path, data_dir):
  """Preemption: SIGTERM mid-run saves a checkpoint at the current step and exits 0."""
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  process = subprocess.Popen(
      [sys.executable, '-m', 'memgpt_jax.cli.train',
       *tiny(tmp_path, data_dir, '--config.train.num_steps=100000',
             '--config.train.warmup_steps=1', '--config.train.log_every=1', '--nosample')],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  metrics = tmp_path / 'metrics.jsonl'
  deadline = time.time() + 240
  while not (metrics.exists() and metrics.read_text().count('\n') >= 2):
    assert process.poll() is None and time.time() < deadline, process.stderr
    time.sleep(0.2)
  process.send_signal(signal.SIGTERM)
  stdout, stderr = process.communicate(timeout=120)
  assert process.returncode == 0, stderr
  steps = sorted(int(p.name) for p in (tmp_path / 'checkpoints').iterdir() if p.name.isdigit())
  assert steps and 2 <= steps[-1] < 100000
  assert f'stopped at step {steps[-1]}' in stdout
