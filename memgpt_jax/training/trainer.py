"""The training loop: data -> step over the devices (training/partitioner.py) ->
metrics, checkpoints.

Re-running on the same workdir resumes from the newest checkpoint that restores:
parameters, optimizer state, step, RNG and the data iterator's position, so a stopped
and resumed run produces the same losses as one that was never stopped.
"""

import pathlib
import signal
import time

import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
import tqdm

from memgpt_jax import config_lib
from memgpt_jax.data.pipeline import data_fingerprint, make_train_iterator
from memgpt_jax.data.tokenizer import make_tokenizer
from memgpt_jax.errors import Diverged, Preempted, UserError
from memgpt_jax.model.transformer import MemGPT
from memgpt_jax.parallel.mesh import describe
from memgpt_jax.training.partitioner import JitPartitioner, make_partitioner
from memgpt_jax.training import workdir as workdir_lib
from memgpt_jax.training.checkpointing import Checkpointer, all_finite
from memgpt_jax.training.evaluation import TaskEvaluators
from memgpt_jax.training.metrics_writer import MetricsWriter
from memgpt_jax.training.optimizer import learning_rate, make_optimizer, make_schedule


class _StopSignal:
  """SIGTERM (preemption) or Ctrl-C asks the loop to checkpoint and stop after the
  current step; a second Ctrl-C interrupts at once.

  Many processes must stop at the same step: there, jax's preemption service
  (started by jax.distributed) catches SIGTERM and agrees on the step.
  """

  def __init__(self):
    self._multiprocess = jax.process_count() > 1
    self.received = None  # the name of the signal that asked to stop
    self._previous = {}
    if not self._multiprocess:
      for signum in (signal.SIGTERM, signal.SIGINT):
        self._previous[signum] = signal.signal(signum, self._handle)

  def _handle(self, signum, frame):
    del frame
    if self.received == 'SIGINT' and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.received = signal.Signals(signum).name

  def reached(self, step: int) -> bool:
    if self._multiprocess and multihost_utils.reached_preemption_sync_point(step):
      self.received = 'SIGTERM'
    return self.received is not None

  def restore(self):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


def _log(message: str):
  """One line from process 0, between progress bar updates."""
  if jax.process_index() == 0:
    tqdm.tqdm.write(message)


def _format(metrics: dict[str, float]) -> str:
  return ' '.join(f'{k}={v:.4g}' for k, v in metrics.items())


def _first_non_finite(logged: list[tuple[int, dict]]) -> str | None:
  """'step 12: loss=nan grad_norm=inf' for the first step whose loss or gradient norm
  is not finite, of (step, metrics) pairs; None if all are."""
  for step, metrics in jax.device_get(logged):
    watched = {k: float(metrics[k]) for k in ('loss', 'grad_norm')}
    if not all(np.isfinite(v) for v in watched.values()):
      return f'step {step}: {_format(watched)}'
  return None


def _fetched(pending: list[tuple[int, dict]]) -> list[tuple[int, dict[str, float]]]:
  """The (step, metrics) pairs on the host, as plain floats."""
  return [(step, {k: float(v) for k, v in metrics.items()})
          for step, metrics in jax.device_get(pending)]


# Metrics that are means over the tokens a step scores (losses.train_loss): a window's is
# the mean over all its scored tokens, so that a step scoring none (a streams batch that
# holds no answer) does not count as a loss of 0.
_PER_TOKEN = ('loss', 'z_loss', 'pointer_gate', 'pointer_aux_loss', 'coverage_loss')


def _window_means(fetched: list[dict[str, float]]) -> dict[str, float]:
  """A logging window's metrics: per-token ones weighted by each step's scored
  tokens (NaN where none scored), scored_tokens summed, the others the mean over steps.
  A window resumed from a checkpoint written before steps counted their tokens weighs
  its steps alike."""
  counted = all('scored_tokens' in m for m in fetched)
  weights = np.array([m['scored_tokens'] if counted else 1.0 for m in fetched])
  means = {}
  for key in fetched[-1]:
    values = np.array([m[key] for m in fetched if key in m])
    if key == 'scored_tokens':
      means[key] = float(values.sum())
    elif key in _PER_TOKEN:
      means[key] = float((values * weights).sum() / weights.sum()) if weights.sum() else np.nan
    else:
      means[key] = float(values.mean())
  return means


def _kept(saved_step: int | None) -> str:
  """What a diverged run leaves: its checkpoints up to the last finite save."""
  if saved_step is None:
    return 'no checkpoint was saved'
  return f'nothing after step {saved_step} was saved'


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
  """Trains (or resumes) in `workdir`; returns the last evaluation's metrics.

  Raises Preempted after checkpointing on SIGTERM or Ctrl-C, Diverged (no checkpoint
  written) when the loss or gradient norm stops being finite, UserError on bad input
  (before anything in the workdir is written).
  """
  config_lib.check_ranges(config)
  workdir = pathlib.Path(workdir)
  if workdir.exists() and not workdir.is_dir():
    raise UserError(f'--workdir {workdir} exists and is not a directory')
  with workdir_lib.locked(workdir, active=jax.process_index() == 0):
    return _train(config, workdir)


def _train(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
  if (config.init_from and not workdir_lib.has_checkpoint(workdir)
      and config.data.tokenizer == 'sentencepiece' and not config.data.sentencepiece.model_file):
    workdir_lib.inherit_tokenizer(config.init_from, workdir)
  tokenizer = make_tokenizer(config.data, workdir)
  model_config = config_lib.validate(config, tokenizer.vocab_size, jax.process_count())
  train = config.train
  model = MemGPT(model_config, deterministic=model_config.dropout_rate == 0.0)
  eval_model = MemGPT(model_config)
  optimizer = make_optimizer(train)

  # Everything that can fail on bad input fails here, before the workdir is written.
  partitioner = make_partitioner(config, model, optimizer)
  train_data = make_train_iterator(config, tokenizer)
  evaluator = TaskEvaluators(config, tokenizer, eval_model, partitioner)
  start = workdir_lib.restore_or_init(config, workdir, partitioner, train_data)
  for note in start.notes:
    _log(note)
  checkpointer = workdir_lib.checkpointer(workdir, keep=train.keep_checkpoints,
                                          async_save=train.async_checkpointing)
  try:
    return _loop(config, workdir, start, partitioner, train_data, evaluator, checkpointer,
                 tokens_per_step=train.batch_size * model_config.seq_len)
  finally:
    checkpointer.wait()
    checkpointer.close()


def _loop(config, workdir: pathlib.Path, start: workdir_lib.Start,
          partitioner: JitPartitioner, train_data, evaluator: TaskEvaluators,
          checkpointer: Checkpointer, tokens_per_step: int) -> dict:
  train, resuming = config.train, start.resumed
  step = int(start.state.step)
  state = partitioner.from_global(start.state)
  topology = {'process_count': jax.process_count(), 'parallelism': config.parallelism,
              'data': data_fingerprint(config),
              'mesh': dict(partitioner.mesh.shape)}
  if jax.process_index() == 0:
    (workdir / workdir_lib.CONFIG).write_text(config.to_json_best_effort(indent=2) + '\n')
  _log(f'{config.parallelism} on mesh {describe(partitioner.mesh)}: '
       f'{jax.device_count()} device(s), {jax.process_count()} process(es)')

  schedule = make_schedule(train)
  writer = MetricsWriter(workdir, resume_step=step if resuming else None)
  stop = _StopSignal()
  progress = tqdm.tqdm(total=train.num_steps, initial=step, unit='step', dynamic_ncols=True,
                       disable=jax.process_index() != 0)
  eval_metrics, pending, timer = {}, list(start.window), None
  saved_step = step if resuming else None
  try:
    while step < train.num_steps:
      state, metrics = partitioner.train_step(state, next(train_data))
      step += 1
      pending.append((step, metrics))
      if timer is None:  # the first step compiles: time from its end
        jax.block_until_ready(metrics)
        timer = (time.perf_counter(), step)
      preempted = stop.reached(step)  # read once: a signal may arrive at any moment
      stopping = preempted or step == train.stop_at_step
      saving = step % train.checkpoint_every == 0 or step == train.num_steps or stopping
      if step % train.log_every == 0 or saving:
        # Every step's loss is checked before a checkpoint can hold what it made.
        if diverged := _first_non_finite(pending):
          raise Diverged(f'{diverged} is not finite; {_kept(saved_step)} (lower '
                         'train.learning_rate or train.grad_clip_norm)')
        if step % train.log_every == 0 or step == train.num_steps:
          fetched = [m for _, m in _fetched(pending)]  # one transfer for the window
          means = _window_means(fetched)
          means['learning_rate'] = float(learning_rate(step - 1, schedule))
          (start_time, start_step), now = timer, time.perf_counter()
          if step > start_step:
            means['tokens_per_second'] = (step - start_step) * tokens_per_step / (
                now - start_time)
            progress.set_postfix(loss=f'{means["loss"]:.3f}',
                                 tok_s=f'{means["tokens_per_second"]:.0f}')
          writer.write(step, 'train', means)
          timer, pending = (now, step), []
      progress.update(1)
      pause_start = time.perf_counter()  # eval and checkpoint time is not training time
      if step % train.eval_every == 0 or step == train.num_steps:
        eval_metrics = evaluator(partitioner.to_global(state).params)
        writer.write(step, 'validation', eval_metrics)
        _log(f'step {step} validation: {_format(eval_metrics)}')
      if saving:
        global_state = partitioner.to_global(state)
        if not all_finite(global_state.params):
          raise Diverged(f'step {step}: the parameters hold NaN or inf; {_kept(saved_step)} '
                         '(lower train.learning_rate)')
        checkpointer.save(step, global_state, train_data, config, topology,
                          window=_fetched(pending))
        saved_step = step
      timer = (timer[0] + time.perf_counter() - pause_start, timer[1])
      if preempted:
        raise Preempted(f'{stop.received} at step {step}: checkpoint saved; run again on '
                        f'{workdir} to resume')
      if stopping:
        _log(f'stopped at step {step}; run again on {workdir} to resume')
        break
    if not eval_metrics and step >= train.num_steps:  # resumed a finished run
      eval_metrics = evaluator(partitioner.to_global(state).params)
  finally:
    progress.close()
    stop.restore()
    writer.close()
  return eval_metrics
