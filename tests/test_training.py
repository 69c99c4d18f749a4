"""End to end on tiny data: train, stop, resume exactly; restore for sampling.
(What goes wrong on the way: tests/test_reliability.py.)"""

import io
import struct

import jax
import numpy as np
import optax
import pytest
from tensorboardX.proto import event_pb2

from conftest import load_config, snapshot, tiny_train_config as tiny_config, train_losses
from memgpt_jax import sampling
from memgpt_jax.data.tokenizer import ByteTokenizer
from memgpt_jax.errors import UserError
from memgpt_jax.training import trainer
from memgpt_jax.training import workdir as workdir_lib
from memgpt_jax.training.metrics_writer import read_metrics
from memgpt_jax.training.optimizer import learning_rate, make_schedule
from memgpt_jax.training.trainer import train_and_evaluate


@pytest.mark.parametrize('settings', [
    dict(learning_rate=2e-3, warmup_steps=5, num_steps=30, end_lr_ratio=0.1),
    dict(learning_rate=1e-3, warmup_steps=0, num_steps=7, end_lr_ratio=0.0),
    dict(learning_rate=3e-4, warmup_steps=50, num_steps=4, end_lr_ratio=0.5),  # warmup cut
])
def test_learning_rate_is_optax_warmup_cosine_decay(settings):
  """The traced schedule (one function for the device and the log) is Optax's, at every
  step and past the end."""
  train = load_config('tiny').train
  train.update(settings)
  want = optax.warmup_cosine_decay_schedule(
      0.0, settings['learning_rate'], min(settings['warmup_steps'], settings['num_steps'] - 1),
      settings['num_steps'], settings['learning_rate'] * settings['end_lr_ratio'])
  steps = np.arange(settings['num_steps'] + 3)
  np.testing.assert_allclose(jax.vmap(learning_rate, (0, None))(steps, make_schedule(train)),
                             jax.vmap(want)(steps), rtol=1e-5, atol=1e-10)


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
  assert all(r['scored_tokens'] > 0 for r in read_metrics(workdir, 'train'))
  # It learns something even in 8 steps: held-out loss below the uniform guess's log(V)
  # (where the small initialisation starts; one batch's loss is too noisy to compare).
  assert metrics['loss'] < np.log(ByteTokenizer.vocab_size) - 0.5
  assert workdir_lib.checkpointer(workdir).latest_step() == 8
  assert (workdir / 'config.json').is_file()
  board = tensorboard_scalars(workdir / 'tensorboard')  # the numbers of metrics.jsonl
  np.testing.assert_allclose([board['train/loss', s] for s in sorted(losses)],
                             [losses[s] for s in sorted(losses)], rtol=1e-6)
  assert board['validation/accuracy', 8] == pytest.approx(metrics['accuracy'], rel=1e-6)


def test_a_logged_loss_is_the_mean_over_the_windows_scored_tokens():
  """A step that scores no token (a streams batch without an answer) adds nothing to
  the logged loss, instead of a loss of 0; per-step metrics stay means over steps."""
  steps = [{'loss': 2.0, 'grad_norm': 1.0, 'scored_tokens': 30.0},
           {'loss': 0.0, 'grad_norm': 3.0, 'scored_tokens': 0.0},
           {'loss': 1.0, 'grad_norm': 2.0, 'scored_tokens': 10.0}]
  assert trainer._window_means(steps) == {'loss': 1.75, 'grad_norm': 2.0, 'scored_tokens': 40.0}
  assert np.isnan(trainer._window_means(steps[1:2])['loss'])
  uncounted = {'loss': 0.5, 'grad_norm': 1.0}  # resumed from a checkpoint without the count
  assert trainer._window_means([uncounted] + steps[:1])['loss'] == 1.25


def tensorboard_scalars(directory) -> dict[tuple[str, int], float]:
  """{(tag, step): value} of the event files in `directory` (records: a little-endian
  uint64 length, its 4-byte checksum, the Event, the Event's 4-byte checksum)."""
  scalars = {}
  for path in sorted(directory.iterdir()):
    data, offset = path.read_bytes(), 0
    while offset < len(data):
      (length,) = struct.unpack('<Q', data[offset:offset + 8])
      event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
      offset += 12 + length + 4
      for value in event.summary.value:
        scalars[value.tag, event.step] = value.simple_value
  return scalars


def test_stop_and_resume_continues_exactly(uninterrupted, data_dir, tmp_path):
  workdir, _ = uninterrupted
  train_and_evaluate(tiny_config(data_dir, stop_at_step=3), tmp_path)
  assert workdir_lib.checkpointer(tmp_path).latest_step() == 3
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


class Recorder(io.StringIO):
  """An output that keeps every write apart."""

  def __init__(self, writes: list[str]):
    super().__init__()
    self._writes = writes

  def write(self, text: str) -> int:
    self._writes.append(text)
    return len(text)


def test_sampling_restores_and_streams(uninterrupted):
  workdir, _ = uninterrupted
  decoder, tokenizer, config = sampling.load_decoder(workdir)
  assert config.model.d_model == 32
  out = io.StringIO()
  texts = sampling.sample(decoder, tokenizer, 'def f(', 40, seed=1, out=out)
  assert out.getvalue().startswith('def f(' + texts[0])
  writes = []
  batch = sampling.sample(decoder, tokenizer, 'x', 12, seed=1, num_samples=3,
                          out=Recorder(writes))
  assert ''.join(writes) == ''.join(f'--- sample {i} ---\nx{text}\n'
                                    for i, text in enumerate(batch))
  # The first sample streams: one write per token before the second sample's.
  assert next(i for i, w in enumerate(writes) if '--- sample 1' in w) >= 12
  with pytest.raises(UserError, match='prompt is empty'):
    sampling.sample(decoder, tokenizer, '', 5)


def test_sampling_an_empty_workdir_is_refused(tmp_path):
  with pytest.raises(UserError, match='no checkpoint'):
    sampling.load_decoder(tmp_path)
  assert not any(tmp_path.iterdir())
