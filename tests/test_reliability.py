"""Nothing lost: divergence, damaged checkpoints, two trainers, accumulation, what a
resume may change, logs without repeats. Tiny config, in-process."""

import errno
import json
import logging
import os
import pathlib
import shutil
import signal
import sys
import threading
import time

from etils import epath
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import snapshot, text_config, tiny_train_config, train_losses
from memgpt_jax import config_lib, sampling
from memgpt_jax.cli import signals
from memgpt_jax.errors import Diverged, Preempted, SaveFailed, UserError
from memgpt_jax.training import trainer
from memgpt_jax.training import workdir as workdir_lib
from memgpt_jax.training.checkpointing import Checkpointer, all_finite
from memgpt_jax.training.evaluation import TaskEvaluators
from memgpt_jax.training.metrics_writer import MetricsWriter, read_metrics
from memgpt_jax.training.partitioner import JitPartitioner
from memgpt_jax.training.trainer import train_and_evaluate

DEVICE = jax.sharding.SingleDeviceSharding(jax.devices()[0])


def four_steps(data_dir: str, **train):
  """4 updates, each logged; checkpoints at steps 2 and 4."""
  return tiny_train_config(data_dir, **{'num_steps': 4, 'checkpoint_every': 2,
                                        'eval_every': 4, **train})


@pytest.fixture(scope='module')
def finished(data_dir, tmp_path_factory):
  """A finished run: checkpoints 2 and 4, and its parameters at each."""
  workdir = tmp_path_factory.mktemp('finished')
  train_and_evaluate(four_steps(data_dir), workdir)
  return workdir, {step: step_params(workdir, step) for step in (2, 4)}


def step_params(workdir: pathlib.Path, step: int):
  """The parameters saved at `step` (NonFinite if they hold NaN or inf)."""
  return workdir_lib.read_model(workdir / 'checkpoints' / str(step), workdir, DEVICE)[1]


def assert_same_params(a, b, rtol=0.0):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=rtol * 1e-3)


def copy_run(finished, tmp_path) -> pathlib.Path:
  workdir, _ = finished
  copy = tmp_path / 'copy'
  shutil.copytree(workdir, copy)
  return copy


def _truncate(step_dir: pathlib.Path):
  for path in (step_dir / 'state').rglob('d/*'):
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])


def _delete_a_file(step_dir: pathlib.Path):
  for path in (step_dir / 'state').rglob('d/*'):
    path.unlink()


def _garbage_manifest(step_dir: pathlib.Path):
  for path in (step_dir / 'state').rglob('manifest.ocdbt'):
    path.write_bytes(b'not a manifest')


def _no_metadata(step_dir: pathlib.Path):
  (step_dir / 'state' / '_METADATA').unlink()


def _empty(step_dir: pathlib.Path):
  shutil.rmtree(step_dir)
  step_dir.mkdir()


def _non_finite(step_dir: pathlib.Path):
  """The parameters NaN, the rest as saved: what a diverged run without the guard wrote."""
  with ocp.StandardCheckpointer() as checkpointer:
    state = checkpointer.restore(step_dir / 'state')
    state['params'] = jax.tree.map(lambda x: np.full_like(x, np.nan), state['params'])
    shutil.rmtree(step_dir / 'state')
    checkpointer.save(step_dir / 'state', state)


DAMAGE = {'truncated': _truncate, 'deleted file': _delete_a_file,
          'garbage manifest': _garbage_manifest, 'no metadata': _no_metadata,
          'empty': _empty, 'non-finite parameters': _non_finite}


@pytest.mark.parametrize('damage', DAMAGE)
def test_readers_take_the_newest_checkpoint_that_restores(finished, tmp_path, damage, caplog):
  _, params = finished
  workdir = copy_run(finished, tmp_path)
  DAMAGE[damage](workdir / 'checkpoints' / '4')
  with caplog.at_level(logging.WARNING):
    decoder, _, _ = sampling.load_decoder(workdir)
  assert_same_params(decoder.params['params'], params[2])
  assert 'skipped checkpoints that do not restore: step 4 (' in caplog.text
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params[2])
  assert_same_params(workdir_lib.load_params(workdir, abstract), params[2])  # init_from

  DAMAGE[damage](workdir / 'checkpoints' / '2')
  for restore in (lambda: sampling.load_decoder(workdir),
                  lambda: workdir_lib.load_params(workdir, abstract)):
    with pytest.raises(UserError, match='no checkpoint restores: step 4 .*; step 2') as error:
      restore()
    assert '\n' not in str(error.value)


def test_a_reader_lists_again_when_a_trainer_rotates_its_checkpoints_away(
    finished, tmp_path, monkeypatch):
  """memgpt-sample while a trainer writes the workdir: before the reader reads a step
  it listed, the trainer saves newer ones (here: 2 and 4 saved again as 6 and 8) and
  keep-N rotation deletes the listed ones. The reader lists again and reads the newest."""
  _, params = finished
  workdir = copy_run(finished, tmp_path)
  checkpoints = workdir / 'checkpoints'
  read_model = workdir_lib.read_model

  def rotated_before_read(step_dir, *args):
    for old, new in (('2', '6'), ('4', '8')):
      if (checkpoints / old).exists():
        (checkpoints / old).rename(checkpoints / new)
    return read_model(step_dir, *args)

  monkeypatch.setattr(workdir_lib, 'read_model', rotated_before_read)
  decoder, _, _ = sampling.load_decoder(workdir)
  assert_same_params(decoder.params['params'], params[4])


@pytest.mark.parametrize('async_save,code,write', [
    (False, errno.ENOSPC, 1), (True, errno.EIO, 6)])
def test_a_save_that_cannot_write_loses_nothing(finished, data_dir, tmp_path, monkeypatch,
                                                capfd, async_save, code, write):
  """The disk fills (or fails) at one write of the step-4 save, synchronous or not:
  one error naming the step, the workdir and the space a checkpoint needs; the partial
  folder removed, step 2 intact, and the run resumes as if nothing had happened."""
  _, params = finished
  workdir = tmp_path / 'w'
  writes = []
  write_text = epath.Path.write_text

  def failing_write(path, *args, **kwargs):
    if '4.orbax-checkpoint-tmp' in str(path):
      writes.append(path)
      if len(writes) == write:
        raise OSError(code, os.strerror(code))
    return write_text(path, *args, **kwargs)

  monkeypatch.setattr(epath.Path, 'write_text', failing_write)
  config = four_steps(data_dir, async_checkpointing=async_save)
  with pytest.raises(SaveFailed, match=(
      rf'^could not save step 4 in {workdir / "checkpoints"}: \[Errno {code}\] '
      rf'{os.strerror(code)} \(a checkpoint needs about [\d,]+ MiB free\); the partial save '
      'was removed and step 2 is intact: make room and run again to resume$')):
    train_and_evaluate(config, workdir)
  assert 'Traceback' not in capfd.readouterr().err
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == ['2']
  assert_same_params(step_params(workdir, 2), params[2])
  monkeypatch.undo()
  train_and_evaluate(config, workdir)
  assert_same_params(step_params(workdir, 4), params[4])


def test_resume_past_a_damaged_checkpoint_repeats_no_log_line(finished, data_dir, tmp_path,
                                                              capsys):
  """The newest checkpoint is empty (a crash mid-save): the run resumes from step 2,
  sets the empty one aside, ends where the uninterrupted run ended, and logs every
  step once. A lock file left by a dead trainer does not stop it."""
  original, params = finished
  workdir = copy_run(finished, tmp_path)
  _empty(workdir / 'checkpoints' / '4')
  (workdir / workdir_lib.LOCK).write_text('{"host": "gone", "pid": 1, "since": "then"}')
  train_and_evaluate(four_steps(data_dir), workdir)
  assert 'resuming from step 2 of' in capsys.readouterr().out
  assert (workdir / 'checkpoints' / '4.unrestorable').is_dir()
  assert_same_params(step_params(workdir, 4), params[4], rtol=1e-5)
  records = [(r['step'], r['split']) for r in read_metrics(workdir)]
  assert records == [(1, 'train'), (2, 'train'), (3, 'train'), (4, 'train'),
                     (4, 'validation')]
  np.testing.assert_allclose(list(train_losses(workdir).values()),
                             list(train_losses(original).values()), rtol=1e-6)
  assert not (workdir / workdir_lib.LOCK).exists()


def test_no_checkpoint_that_restores_is_one_line(finished, data_dir, tmp_path):
  workdir = copy_run(finished, tmp_path)
  for step in (2, 4):
    _garbage_manifest(workdir / 'checkpoints' / str(step))
  before = snapshot(workdir)
  with pytest.raises(UserError, match='no checkpoint restores') as error:
    train_and_evaluate(four_steps(data_dir), workdir)
  assert '\n' not in str(error.value)
  assert snapshot(workdir) == before


def test_a_diverged_run_stops_and_keeps_its_last_finite_checkpoint(data_dir, tmp_path):
  config = tiny_train_config(data_dir, num_steps=12, learning_rate=1e4, grad_clip_norm=1e9,
                             checkpoint_every=1, keep_checkpoints=2, log_every=4,
                             eval_every=100)
  with pytest.raises(Diverged, match=r'step (\d+): loss=\S+ grad_norm=\S+ is not finite'):
    train_and_evaluate(config, tmp_path)
  kept = workdir_lib.checkpointer(tmp_path).all_steps()
  assert kept, 'the first steps (warmup from 0) are finite'
  for step in kept:
    assert all_finite(step_params(tmp_path, step))
  for line in (tmp_path / 'metrics.jsonl').read_text().splitlines():
    json.loads(line, parse_constant=pytest.fail)  # strict JSON: no NaN
  # Resuming diverges again at the same step; rotation keeps the finite checkpoints.
  with pytest.raises(Diverged):
    train_and_evaluate(config, tmp_path)
  assert workdir_lib.checkpointer(tmp_path).all_steps() == kept


def test_ctrl_c_mid_run_checkpoints_its_step_and_stops(data_dir, tmp_path):
  """Ctrl-C (SIGINT) mid-run: the step in flight ends, is checkpointed whole, and the run
  stops with Preempted, its lock released. (The program's exit status 3 and its one
  line on stderr, after SIGTERM: tests/test_cli.py.)"""
  config = tiny_train_config(data_dir, num_steps=100_000, warmup_steps=1,
                             eval_every=100_000, checkpoint_every=100_000)
  metrics, handler = tmp_path / 'metrics.jsonl', signal.getsignal(signal.SIGINT)

  def interrupt_once_running():  # two logged steps: the loop and its handler are up
    while not (metrics.exists() and metrics.read_text().count('\n') >= 2):
      time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGINT)

  threading.Thread(target=interrupt_once_running, daemon=True).start()
  with pytest.raises(Preempted) as preempted:
    train_and_evaluate(config, tmp_path)
  checkpointer = workdir_lib.checkpointer(tmp_path)
  step = checkpointer.latest_step()
  checkpointer.close()
  assert 2 <= step < 100_000
  assert str(preempted.value) == (
      f'SIGINT at step {step}: checkpoint saved; run again on {tmp_path} to resume')
  assert max(train_losses(tmp_path)) == step
  assert not list(tmp_path.rglob('*.orbax-checkpoint-tmp*'))
  assert not (tmp_path / 'train.lock').exists()
  assert signal.getsignal(signal.SIGINT) is handler  # the test's own again


def test_metrics_are_strict_json(tmp_path):
  writer = MetricsWriter(tmp_path)
  writer.write(1, 'train', {'loss': float('nan'), 'grad_norm': float('inf'), 'lr': 0.5})
  writer.close()
  line = (tmp_path / 'metrics.jsonl').read_text()
  assert json.loads(line, parse_constant=pytest.fail) == {
      'step': 1, 'split': 'train', 'loss': None, 'grad_norm': None, 'lr': 0.5}


def test_a_second_trainer_is_refused_while_readers_go_on(finished, data_dir, tmp_path):
  workdir = copy_run(finished, tmp_path)
  before = snapshot(workdir)
  with workdir_lib.locked(workdir):
    with pytest.raises(UserError, match=f'in use by process {os.getpid()} on host '):
      train_and_evaluate(four_steps(data_dir, num_steps=6), workdir)
    sampling.load_decoder(workdir)  # sampling only reads: no lock
    assert {k: v for k, v in snapshot(workdir).items() if k != workdir_lib.LOCK} == before
  assert snapshot(workdir) == before


def _unwritable_directory(tmp_path: pathlib.Path) -> pathlib.Path | None:
  """A directory where creating a file fails: a read-only one, or (root writes there
  anyway) one of the kernel's."""
  read_only = tmp_path / 'read_only'
  read_only.mkdir(mode=0o500)
  for directory in (read_only, pathlib.Path('/sys/kernel'), pathlib.Path('/proc/sys')):
    try:
      (directory / 'probe').touch()
    except OSError:
      return directory
    (directory / 'probe').unlink()
  return None


def test_an_unwritable_workdir_is_one_line(data_dir, tmp_path):
  target = _unwritable_directory(tmp_path)
  if target is None:
    pytest.skip('no unwritable directory to try')
  with pytest.raises(UserError, match=f'--workdir {target} is not writable'):
    train_and_evaluate(four_steps(data_dir), target)


@pytest.mark.parametrize('changes,key', [
    ({'train.learning_rate': 0.01}, 'train.learning_rate'),
    ({'train.batch_size': 8}, 'train.batch_size'),
    ({'model.d_model': 48}, 'model.d_model'),
    ({'model.segment_len': 4}, 'model.segment_len'),
    ({'data.shuffle_seed': 7}, 'data.shuffle_seed'),
    ({'data.layout': 'streams'}, 'data.layout'),
    ({'data.source': 'text', 'data.paths': __file__}, 'data.paths'),
    ({'seed': 3}, 'seed')])
def test_a_resume_refuses_changes_to_what_is_trained(finished, data_dir, changes, key):
  workdir, _ = finished
  before = snapshot(workdir)
  config = four_steps(data_dir)
  for name, value in changes.items():
    config_lib.set_dotted(config, name, value)
  with pytest.raises(UserError, match=rf'holds a run with {key}=\S+ there, \S+ here: a resume '):
    train_and_evaluate(config, workdir)
  assert snapshot(workdir) == before


def test_a_resume_on_edited_text_is_refused(data_dir, tmp_path):
  """A text file edited between stop and resume would continue the run on other data
  from a data position made for the old: refused with one line, nothing written."""
  config = text_config(data_dir, tmp_path)
  config.train.stop_at_step, config.train.checkpoint_every = 2, 2
  workdir = tmp_path / 'run'
  train_and_evaluate(config, workdir)
  (tmp_path / 'code.txt').write_text('def g(y):\n  return y * 2\n' * 40)
  before = snapshot(workdir)
  config.train.stop_at_step = 0
  with pytest.raises(UserError, match=r'was trained on other data \(text_files/files_\w+/'):
    train_and_evaluate(config, workdir)
  assert snapshot(workdir) == before


def test_accumulated_micro_batches_make_the_update_of_one_batch(finished, data_dir, tmp_path):
  """batch 4 in 2 micro-batches of 2 rows = batch 4 at once: losses, learning rates,
  parameters; num_steps counts updates, so the schedule is the same."""
  original, params = finished
  train_and_evaluate(four_steps(data_dir, grad_accum_steps=2), tmp_path)
  for split in ('train',):
    got, want = read_metrics(tmp_path, split), read_metrics(original, split)
    assert [r['step'] for r in got] == [r['step'] for r in want] == [1, 2, 3, 4]
    for name in ('loss', 'grad_norm', 'learning_rate'):
      np.testing.assert_allclose([r[name] for r in got], [r[name] for r in want], rtol=2e-5)
  assert_same_params(step_params(tmp_path, 4), params[4], rtol=1e-4)


def test_a_resume_may_extend_the_run_and_change_the_micro_batches(finished, data_dir,
                                                                  tmp_path):
  workdir = copy_run(finished, tmp_path)
  config = four_steps(data_dir, num_steps=6, grad_accum_steps=2, log_every=2)
  train_and_evaluate(config, workdir)
  assert sorted(train_losses(workdir)) == [1, 2, 3, 4, 6]
  assert workdir_lib.checkpointer(workdir).latest_step() == 6


def test_a_checkpoint_from_before_a_setting_existed_resumes_at_its_default(finished,
                                                                            data_dir, tmp_path):
  """A config saved before `data.chat.*` (a setting since added to configs/default.py) reads
  as having its default: the resume goes on; a changed value is still refused."""
  workdir = copy_run(finished, tmp_path)
  for metadata in (workdir / 'checkpoints').glob('*/config/metadata'):
    saved = json.loads(metadata.read_text())
    del saved['data']['chat']
    metadata.write_text(json.dumps(saved))
  config = four_steps(data_dir)
  config.data.chat.user = 'Q: '
  with pytest.raises(UserError, match=r"data.chat.user='User: ' there, 'Q: ' here"):
    train_and_evaluate(config, workdir)
  train_and_evaluate(four_steps(data_dir, num_steps=5), workdir)
  assert workdir_lib.checkpointer(workdir).latest_step() == 5


def test_a_stop_between_metrics_rows_logs_the_rows_of_an_uninterrupted_run(finished, data_dir,
                                                                           tmp_path):
  """Stopped at step 3 of a row averaging steps 1-4 and resumed: the row at step 4 is the
  mean of all four steps, as without the stop (the finished run logs every step)."""
  original, _ = finished
  config = four_steps(data_dir, log_every=4, stop_at_step=3)
  train_and_evaluate(config, tmp_path)
  assert not read_metrics(tmp_path, 'train')
  config.train.stop_at_step = 0
  train_and_evaluate(config, tmp_path)
  got, every_step = read_metrics(tmp_path, 'train'), read_metrics(original, 'train')
  assert [r['step'] for r in got] == [4]
  for name in ('loss', 'grad_norm'):
    np.testing.assert_allclose(got[0][name], np.mean([r[name] for r in every_step]), rtol=1e-5)


def _signalled(function):
  """`function`, sending this process SIGTERM as it is first called."""
  sent = []

  def wrapped(*args, **kwargs):
    if not sent:
      sent.append(signal.SIGTERM)
      os.kill(os.getpid(), signal.SIGTERM)
    return function(*args, **kwargs)
  return wrapped


PHASES = {'data preparation': (trainer, 'make_train_iterator'),
          'compile and first step': (JitPartitioner, 'train_step'),
          'evaluation': (TaskEvaluators, '__call__'),
          'save': (Checkpointer, 'save')}


@pytest.mark.parametrize('phase', PHASES)
def test_sigterm_at_any_phase_stops_cleanly_and_a_rerun_ends_as_if_never_stopped(
    phase, finished, data_dir, tmp_path, monkeypatch):
  """SIGTERM as the run enters each phase, with the program's handler of its first
  lines: before the steps, exit 3 at once; during them, a checkpoint, then Preempted
  (or, at the last step's evaluation, the run ends). No lock or partial save is left,
  and running again ends with the parameters of a run never stopped."""
  owner, name = PHASES[phase]
  monkeypatch.setattr(owner, name, _signalled(getattr(owner, name)))
  monkeypatch.setattr(signals, '_received', [])  # this process's record, put back after
  monkeypatch.setattr(sys, 'unraisablehook', sys.unraisablehook)
  previous = signal.getsignal(signal.SIGTERM)
  signals.exit_on_sigterm('memgpt-train')
  try:
    train_and_evaluate(four_steps(data_dir), tmp_path)
  except SystemExit as stopped:
    assert stopped.code == 3 and phase == 'data preparation'
  except Preempted:
    assert phase in ('compile and first step', 'save')
  else:
    assert phase == 'evaluation'
  finally:
    signal.signal(signal.SIGTERM, previous)
  assert not (tmp_path / 'train.lock').exists()
  assert not list(tmp_path.rglob('*.orbax-checkpoint-tmp*'))
  monkeypatch.undo()
  assert not signals._received  # pylint: disable=protected-access
  train_and_evaluate(four_steps(data_dir), tmp_path)
  assert sorted(train_losses(tmp_path)) == [1, 2, 3, 4]
  assert_same_params(step_params(tmp_path, 4), finished[1][4], rtol=1e-6)
