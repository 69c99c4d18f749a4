"""The command-line programs as a user runs them: overrides, the sampling flags, and
how errors and signals reach the shell (one line on stderr, the exit status); what
each error says is checked in-process (tests/test_errors.py, tests/test_reliability.py)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, program_flags


def run(program: str, *args: str, timeout: float = 300,
        own_cache: bool = False) -> subprocess.CompletedProcess:
  """`program` as a user runs it; `own_cache`: without the tests' shared compilation
  cache (JAX_COMPILATION_CACHE_DIR), so that its --compilation_cache is used."""
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  if own_cache:
    env.pop('JAX_COMPILATION_CACHE_DIR')
  return subprocess.run([sys.executable, '-m', f'memgpt_jax.cli.{program}', *args],
                        capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=env)


def error_line(status: int, stderr: str) -> str:
  """Asserts a clean failure: status 2, no traceback, exactly one line on stderr."""
  assert status == 2, stderr
  assert 'Traceback' not in stderr
  lines = stderr.strip().splitlines()
  assert len(lines) == 1, stderr
  return lines[0]


def tiny(workdir, data_dir, *overrides):
  return ('--config=configs/tiny.py', f'--workdir={workdir}',
          f'--config.data.tfds_data_dir={data_dir}', *overrides)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, data_dir):
  """A real CLI run with dotted overrides; it ends by streaming a sample."""
  workdir = tmp_path_factory.mktemp('cli_run')
  result = run('train', *tiny(workdir, data_dir, '--config.train.num_steps=4',
                              '--config.sample.prompt=import '))
  assert result.returncode == 0, result.stderr
  return workdir, result


def test_train_applies_overrides_and_prints_a_sample(trained):
  workdir, result = trained
  saved = json.loads((workdir / 'config.json').read_text())
  assert saved['train']['num_steps'] == 4
  assert 'last validation: loss=' in result.stdout
  assert "--- sample (prompt 'import ') ---\nimport " in result.stdout


def test_sample_program_decodes_from_the_workdir(trained, tmp_path):
  """The flags reach the sampler: a prompt file, a batch of samples, the sampling
  settings, where compiled programs are kept (the one-sample stream is checked
  in-process, tests/test_training.py)."""
  workdir, _ = trained
  prompt_file = tmp_path / 'prompt.txt'
  prompt_file.write_text('class A:\n')
  cache = tmp_path / 'compiled'
  result = run('sample', f'--workdir={workdir}', f'--prompt_file={prompt_file}',
               '--max_new_tokens=5', '--num_samples=2', '--top_k=5', '--top_p=0.9',
               '--seed=3', f'--compilation_cache={cache}', own_cache=True)
  assert result.returncode == 0, result.stderr
  assert result.stdout.count('--- sample ') == 2, result.stdout
  assert result.stdout.count('---\nclass A:\n') == 2, result.stdout
  assert any(cache.iterdir())  # a second sampling run would compile nothing


@pytest.fixture
def train_in_process(monkeypatch, capsys):
  """memgpt-train's entry point run in this process on the given flags: -> (exit
  status, stderr)."""
  with program_flags('memgpt_jax.cli.train') as train:

    def run_train(*args: str) -> tuple[int, str]:
      monkeypatch.setattr(sys, 'argv', ['memgpt-train', *args])
      with pytest.raises(SystemExit) as exited:
        train.run()
      return exited.value.code, capsys.readouterr().err

    yield run_train


@pytest.mark.parametrize('args,message', [
    (('--config={tmp}/config.py',), 'is not valid Python: invalid syntax'),
    (('--config=configs/tiny.py', '--config.model.d_model=abc'),
     'flag --config.model.d_model=abc: invalid literal'),
    (('--config=configs/tiny.py', '--config.train.grad_clip_norm=-1'),
     'train.grad_clip_norm=-1.0 must be > 0'),
])
def test_bad_training_input_is_one_line(train_in_process, tmp_path, args, message):
  """A config file that does not load (found before the flags parser runs), a value
  the parser refuses and one outside its range, each as one line with exit status 2; tests/test_errors.py checks
  the messages."""
  (tmp_path / 'config.py').write_text('def get_config(:\n')
  args = [arg.format(tmp=tmp_path) for arg in args]
  line = error_line(*train_in_process(*args, f'--workdir={tmp_path / "w"}'))
  assert line.startswith('memgpt-train: error: ') and message in line
  assert not (tmp_path / 'w').exists()  # refused before anything was written


def test_bad_sampling_input_is_one_line(tmp_path):
  """The shell's view of a refusal: exactly one line on stderr and exit status 2 from
  the program run as a user runs it (the training program's refusals take the same
  way out, checked in-process above); tests/test_errors.py checks the message."""
  prompt_file = tmp_path / 'prompt.txt'
  prompt_file.write_bytes(b'caf\xe9 au lait')  # Latin-1
  result = run('sample', f'--workdir={tmp_path}', f'--prompt_file={prompt_file}')
  line = error_line(result.returncode, result.stderr)
  assert line == f'memgpt-sample: error: --prompt_file {prompt_file} is not UTF-8 text ' \
      '(invalid continuation byte at byte 3): convert it, e.g. with iconv -t UTF-8'


def test_preemption_checkpoints_and_stops(tmp_path, data_dir):
  """SIGTERM (preemption) mid-run saves a checkpoint at the current step and exits with
  status 3 (preempted), one line on stderr, no save left half-done. (Ctrl-C takes the
  same way out: tests/test_reliability.py, in-process.)"""
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
  assert process.returncode == 3, stderr
  steps = sorted(int(p.name) for p in (tmp_path / 'checkpoints').iterdir() if p.name.isdigit())
  assert steps and 2 <= steps[-1] < 100000, stdout
  assert stderr.strip().splitlines()[-1] == (
      f'memgpt-train: preempted: SIGTERM at step {steps[-1]}: checkpoint saved; run again '
      f'on {tmp_path} to resume')
  assert not list(tmp_path.rglob('*.orbax-checkpoint-tmp*'))
  assert not (tmp_path / 'train.lock').exists()


@pytest.mark.parametrize('program', ['train', 'sample'])
def test_sigterm_while_importing_is_the_preempted_status(program, tmp_path):
  """A scheduler's SIGTERM half a second in (JAX still importing): exit 3 and one line,
  not the shell's 143."""
  process = subprocess.Popen([sys.executable, '-m', f'memgpt_jax.cli.{program}',
                              f'--workdir={tmp_path}'], cwd=ROOT, stderr=subprocess.PIPE,
                             text=True, env=dict(os.environ, JAX_PLATFORMS='cpu'))
  time.sleep(0.5)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=60)
  assert process.returncode == 3, stderr
  assert stderr.strip().splitlines() == [
      f'memgpt-{program}: preempted: SIGTERM outside the training steps: nothing to save; '
      'run it again']
