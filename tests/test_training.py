"""End to end on tiny data: train, stop, resume exactly; refuse a foreign checkpoint;
restore for sampling."""

import io
import pathlib

import jax
import numpy as np
import pytest

from conftest import load_config
from memgpt_jax import sampling
from memgpt_jax.errors import UserError
from memgpt_jax.training.checkpointing import Checkpointer
from memgpt_jax.training.metrics_writer import read_metrics
from memgpt_jax.training.trainer import train_and_evaluate


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def tiny_config(data_dir: str, **train):
  config = load_config('tiny')
  config.data.tfds_data_dir = data_dir
  config.train.num_steps = 8
  config.train.log_every = 1
  config.train.eval_every = 8
  config.train.checkpoint_every = 4
  config.train.eval_batches = 1
  for key, value in train.items():
    config.train[key] = value
  return config


def train_losses(workdir) -> dict[int, float]:
  return {r['step']: r['loss'] for r in read_metrics(workdir, 'train')}


def snapshot(directory: pathlib.Path) -> dict[str, tuple[int, int]]:
  return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
          for p in directory.rglob('*') if p.is_file()}


@pytest.fixture(scope='module')
def uninterrupted(data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('uninterrupted')
  metrics = train_and_evaluate(tiny_config(data_dir), workdir)
  return workdir, metrics


def test_training_writes_metrics_and_checkpoints(uninterrupted):
  workdir, metrics = uninterrupted
  assert {'loss', 'perplexity', 'bits_per_byte', 'accuracy', 'pointer_gate',
          'copy_share'} <= metrics.keys()
  assert np.isfinite(list(metrics.values())).all()
  losses = train_losses(workdir)
  assert sorted(losses) == list(range(1, 9))
  assert losses[8] < losses[1]  # it learns something even in 8 steps
  assert Checkpointer(workdir).latest_step() == 8
  assert (workdir / 'config.json').is_file()
  assert any((workdir / 'tensorboard').iterdir())


def test_stop_and_resume_continues_exactly(uninterrupted, data_dir, tmp_path):
  workdir, _ = uninterrupted
  train_and_evaluate(tiny_config(data_dir, stop_at_step=3), tmp_path)
  assert Checkpointer(tmp_path).latest_step() == 3
  assert sorted(train_losses(tmp_path)) == [1, 2, 3]
  train_and_evaluate(tiny_config(data_dir), tmp_path)  # resumes at step 3
  resumed, expected = train_losses(tmp_path), train_losses(workdir)
  assert sorted(resumed) == sorted(expected)
  np.testing.assert_allclose([resumed[s] for s in sorted(resumed)],
                             [expected[s] for s in sorted(expected)], rtol=1e-6)
  decoder, _, _ = sampling.load_decoder(tmp_path)
  reference, _, _ = sampling.load_decoder(workdir)
  for a, b in zip(jax.tree.leaves(decoder.params), jax.tree.leaves(reference.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_resuming_a_finished_run_only_evaluates(uninterrupted, data_dir):
  workdir, metrics = uninterrupted
  before = snapshot(workdir / 'checkpoints')
  again = train_and_evaluate(tiny_config(data_dir), workdir)
  assert again['loss'] == pytest.approx(metrics['loss'], rel=1e-6)
  assert snapshot(workdir / 'checkpoints') == before


def test_checkpoint_of_another_model_shape_is_refused(uninterrupted, data_dir):
  workdir, _ = uninterrupted
  before = snapshot(workdir)
  config = tiny_config(data_dir)
  config.model.d_model = 48
  with pytest.raises(UserError, match=r'another model shape \(model\.d_model=32 there, 48'):
    train_and_evaluate(config, workdir)
  assert snapshot(workdir) == before  # nothing in the workdir was touched


def test_sampling_restores_and_streams(uninterrupted):
  workdir, _ = uninterrupted
  decoder, tokenizer, config = sampling.load_decoder(workdir)
  assert config.model.d_model == 32
  out = io.StringIO()
  texts = sampling.sample(decoder, tokenizer, 'def f(', 40, seed=1, out=out)
  assert out.getvalue().startswith('def f(' + texts[0])
  batch = sampling.sample(decoder, tokenizer, 'x', 12, seed=1, num_samples=3, out=io.StringIO())
  assert len(batch) == 3
  with pytest.raises(UserError, match='prompt is empty'):
    sampling.sample(decoder, tokenizer, '', 5)


def test_sampling_an_empty_workdir_is_refused(tmp_path):
  with pytest.raises(UserError, match='no checkpoint'):
    sampling.load_decoder(tmp_path)
  assert not any(tmp_path.iterdir())
