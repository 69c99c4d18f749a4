"""The training loop: data -> step over the devices (memgpt_jax.parallel) -> metrics,
checkpoints.

Re-running on the same workdir resumes from the latest checkpoint: parameters,
optimizer state, step, RNG and the data iterator's position, so a stopped and resumed
run produces the same losses as one that was never stopped.
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
from memgpt_jax.data.pipeline import make_train_iterator
from memgpt_jax.data.tokenizer import make_tokenizer
from memgpt_jax.errors import UserError
from memgpt_jax.model.transformer import MemGPT
from memgpt_jax.parallel.mesh import describe
from memgpt_jax.parallel.partitioner import JitPartitioner, make_partitioner
from memgpt_jax.training import pretrained, steps
from memgpt_jax.training.checkpointing import Checkpointer, first_difference
from memgpt_jax.training.evaluation import TaskEvaluators
from memgpt_jax.training.metrics_writer import MetricsWriter
from memgpt_jax.training.optimizer import learning_rate_schedule, make_optimizer


class _StopSignal:
  """SIGTERM (preemption) asks the loop to checkpoint and stop after the current step.

  Many processes must stop at the same step: there, jax's preemption service
  (started by jax.distributed) catches the signal and agrees on the step.
  """

  def __init__(self):
    self._multiprocess = jax.process_count() > 1
    self._requested = False
    if not self._multiprocess:
      self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    self._requested = True

  def reached(self, step: int) -> bool:
    if self._multiprocess:
      return multihost_utils.reached_preemption_sync_point(step)
    return self._requested

  def restore(self):
    if not self._multiprocess:
      signal.signal(signal.SIGTERM, self._previous)


def restore_compatible(checkpointer: Checkpointer, config: ml_collections.ConfigDict,
                       partitioner: JitPartitioner, workdir: pathlib.Path,
                       train_data) -> steps.TrainState:
  """The latest checkpoint in the partitioner's global layout, whatever mesh and
  processes wrote it; refuses one made by another model shape. `train_data`
  continues from its saved position when as many processes wrote it."""
  abstract = partitioner.abstract_state
  if pretrained.params_mismatch(workdir, abstract.params):
    raise UserError(f'{workdir} holds a checkpoint of another model shape '
                    f'({first_difference(checkpointer.restore_config(), config)}): use a '
                    'new --workdir or the same model settings')
  saved_processes = checkpointer.restore_topology()['process_count']
  if saved_processes != jax.process_count():
    _log(f'{workdir}: checkpoint written by {saved_processes} processes, restored on '
         f'{jax.process_count()}; each process reads its data shard from the start')
    train_data = None
  return checkpointer.restore(abstract, train_data)


def _log(message: str):
  """One line from process 0, between progress bar updates."""
  if jax.process_index() == 0:
    tqdm.tqdm.write(message)


def _format(metrics: dict[str, float]) -> str:
  return ' '.join(f'{k}={v:.4g}' for k, v in metrics.items())


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
  """Trains (or resumes) in `workdir`; returns the last evaluation's metrics."""
  workdir = pathlib.Path(workdir)
  if workdir.exists() and not workdir.is_dir():
    raise UserError(f'--workdir {workdir} exists and is not a directory')
  resuming = pretrained.has_checkpoint(workdir)
  if (config.init_from and not resuming and config.data.tokenizer == 'sentencepiece'
      and not config.data.sentencepiece.model_file):
    pretrained.inherit_tokenizer(config.init_from, workdir)
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
  if config.init_from and not resuming:
    init_params = pretrained.load_params(config.init_from, partitioner.abstract_state.params)
  checkpointer = Checkpointer(workdir, keep=train.keep_checkpoints,
                              async_save=train.async_checkpointing)
  if resuming:
    state = restore_compatible(checkpointer, config, partitioner, workdir, train_data)
  else:
    state = partitioner.init_state()
    if config.init_from:  # fine-tuning: new optimizer state, data and step count
      state = state.replace(params=init_params)
      _log(f'initialised the parameters from {config.init_from}')
  step = int(state.step)
  state = partitioner.from_global(state)
  topology = {'process_count': jax.process_count(), 'parallelism': config.parallelism,
              'mesh': dict(partitioner.mesh.shape)}
  if jax.process_index() == 0:
    (workdir / 'config.json').write_text(config.to_json_best_effort(indent=2) + '\n')
  _log(f'{config.parallelism} on mesh {describe(partitioner.mesh)}: '
       f'{jax.device_count()} device(s), {jax.process_count()} process(es)')

  schedule = learning_rate_schedule(train)
  writer = MetricsWriter(workdir)
  stop = _StopSignal()
  tokens_per_step = train.batch_size * model_config.seq_len
  progress = tqdm.tqdm(total=train.num_steps, initial=step, unit='step', dynamic_ncols=True,
                       disable=jax.process_index() != 0)
  eval_metrics, pending, timer = {}, [], None
  try:
    while step < train.num_steps:
      state, metrics = partitioner.train_step(state, next(train_data))
      step += 1
      pending.append(metrics)
      if timer is None:  # the first step compiles: time from its end
        jax.block_until_ready(metrics)
        timer = (time.perf_counter(), step)
      if step % train.log_every == 0 or step == train.num_steps:
        means = {k: float(np.mean([m[k] for m in jax.device_get(pending)]))
                 for k in pending[0]}
        means['learning_rate'] = float(schedule(step - 1))
        (start_time, start_step), now = timer, time.perf_counter()
        if step > start_step:
          means['tokens_per_second'] = (step - start_step) * tokens_per_step / (now - start_time)
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
      stopping = stop.reached(step) or step == train.stop_at_step
      if step % train.checkpoint_every == 0 or step == train.num_steps or stopping:
        checkpointer.save(step, partitioner.to_global(state), train_data, config, topology)
      timer = (timer[0] + time.perf_counter() - pause_start, timer[1])
      if stopping:
        _log(f'stopped at step {step}; run again on {workdir} to resume')
        break
    if not eval_metrics and step >= train.num_steps:  # resumed a finished run
      eval_metrics = evaluator(partitioner.to_global(state).params)
  finally:
    progress.close()
    stop.restore()
    checkpointer.wait()
    checkpointer.close()
    writer.close()
  return eval_metrics
