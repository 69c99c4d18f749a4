"""Many processes, as on many hosts: jax.distributed over localhost with CPU (gloo)
collectives. Two processes train like one on the same global batches; checkpoints
move between process counts and meshes both ways; the two-process command of
docs/programs.md runs the real trainer, each process on its own data shard."""

import io
import subprocess
import sys

import numpy as np
import portpicker

from conftest import ROOT, load_config
import distributed_worker
from memgpt_jax import sampling
from memgpt_jax.training import workdir as workdir_lib
from memgpt_jax.training.metrics_writer import read_metrics
from memgpt_jax.training.trainer import train_and_evaluate
from multidevice import run_scripts


def worker_results(path) -> tuple[dict, list[np.ndarray]]:
  """Losses and final parameters of each phase ('fresh', 'resumed') of a worker run."""
  saved = np.load(path)
  phases = {name.removesuffix('_losses') for name in saved if name.endswith('_losses')}
  losses = {phase: saved[f'{phase}_losses'] for phase in phases}
  params = {phase: [saved[name] for name in sorted(
      (n for n in saved if n.startswith(f'{phase}_param_')), key=lambda n: int(n.split('_')[-1]))]
            for phase in phases}
  return losses, params


def test_two_processes_train_like_one_and_checkpoints_cross_over(tmp_path):
  """One process (1 device) trains 3 steps, checkpointing at step 2. Two processes (2
  devices each, mesh fsdp=2 x tensor=2: parameters split across both) train the same
  3 steps, checkpoint at step 2, then restore the one-process checkpoint and redo
  step 3. One process restores the two-process checkpoint and redoes step 3."""
  one_dir, two_dir = tmp_path / 'one_process', tmp_path / 'two_processes'
  # The one-process runs share this test's process (one device): no start-up to pay.
  distributed_worker.main(['--fresh', '--steps=3', '--save_at=2', f'--save_dir={one_dir}',
                           f'--out={tmp_path}/one.npz'])
  port = portpicker.pick_unused_port()
  run_scripts(*(('distributed_worker.py', '--num_processes=2', f'--process_id={index}',
                 f'--port={port}', '--fsdp=2', '--tensor=2', '--fresh', '--steps=3',
                 '--save_at=2', f'--save_dir={two_dir}', f'--resume_dir={one_dir}',
                 f'--out={tmp_path}/two.npz') for index in range(2)), devices=2)
  distributed_worker.main(['--steps=3', f'--resume_dir={two_dir}',
                           f'--out={tmp_path}/back.npz'])

  one_losses, one_params = worker_results(tmp_path / 'one.npz')
  two_losses, two_params = worker_results(tmp_path / 'two.npz')
  back_losses, back_params = worker_results(tmp_path / 'back.npz')
  assert str(np.load(tmp_path / 'two.npz')['mesh']) == 'data=1 x fsdp=2 x tensor=2'
  expected = one_losses['fresh']
  assert len(expected) == 3 and expected[0] != expected[2]
  np.testing.assert_allclose(two_losses['fresh'], expected, rtol=1e-5)
  np.testing.assert_allclose(two_losses['resumed'], expected[2:], rtol=1e-5)
  np.testing.assert_allclose(back_losses['resumed'], expected[2:], rtol=1e-5)
  for params in (two_params['fresh'], two_params['resumed'], back_params['resumed']):
    assert len(params) == len(one_params['fresh'])
    for got, want in zip(params, one_params['fresh']):
      np.testing.assert_allclose(got, want, atol=2e-5)


def tiny_args(workdir, data_dir, num_steps: int) -> list[str]:
  return ['--config=configs/tiny.py', f'--workdir={workdir}',
          f'--config.data.tfds_data_dir={data_dir}', f'--config.train.num_steps={num_steps}',
          '--config.train.log_every=1', '--config.train.checkpoint_every=2',
          '--config.train.eval_every=4', '--config.train.eval_batches=1']


def test_the_documented_two_process_run_resumes_in_one_process(tmp_path, data_dir, capsys):
  workdir = tmp_path / 'run'
  result = subprocess.run(
      [sys.executable, 'experiments/local_cluster.py', '--num_processes=2',
       '--devices_per_process=2', '--', *tiny_args(workdir, data_dir, 4),
       '--config.mesh.fsdp=2'],
      cwd=ROOT, capture_output=True, text=True, timeout=400)
  assert result.returncode == 0, result.stderr[-4000:]
  assert 'jit on mesh data=2 x fsdp=2 x tensor=1: 4 device(s), 2 process(es)' in result.stdout
  assert result.stdout.count('last validation: loss=') == 1
  assert f'(sample with: memgpt-sample --workdir={workdir}' in result.stdout
  other = (workdir / 'logs' / 'process_1.log').read_text()
  assert 'validation' not in other and 'Traceback' not in other  # logs from process 0
  assert [r['step'] for r in read_metrics(workdir, 'train')] == [1, 2, 3, 4]
  positions = sorted((workdir / 'checkpoints' / '4' / 'data').glob('process_*.json'))
  assert [p.name for p in positions] == ['process_0-of-2.json', 'process_1-of-2.json']
  decoder, tokenizer, _ = sampling.load_decoder(workdir)  # onto this one device
  out = io.StringIO()
  sampling.sample(decoder, tokenizer, 'def ', 4, out=out)
  assert out.getvalue().startswith('def ')

  config = load_config('tiny')  # the same run, on in this single-device process
  config.data.tfds_data_dir = data_dir
  config.train.update(num_steps=6, log_every=1, checkpoint_every=2, eval_every=4,
                      eval_batches=1)
  metrics = train_and_evaluate(config, workdir)
  assert 'checkpoint written by 2 processes, restored on 1' in capsys.readouterr().out
  assert [r['step'] for r in read_metrics(workdir, 'train')] == [1, 2, 3, 4, 5, 6]
  assert np.isfinite(metrics['loss'])
  checkpointer = workdir_lib.checkpointer(workdir)
  assert checkpointer.latest_step() == 6
  assert checkpointer.restore_topology()['process_count'] == 1
  checkpointer.close()


def test_distributed_on_without_a_cluster_is_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'memgpt_jax.cli.train', '--config=configs/tiny.py',
       f'--workdir={tmp_path}', '--distributed=on'],
      cwd=ROOT, capture_output=True, text=True, timeout=120,
      env={'PATH': '/usr/bin:/bin', 'JAX_PLATFORMS': 'cpu'})
  assert result.returncode == 2, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and 'No cluster was detected' in lines[0], result.stderr
