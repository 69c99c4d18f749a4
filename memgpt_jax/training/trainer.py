"""The training loop: data -> jitted step over the device mesh -> metrics, checkpoints.

Re-running on the same workdir resumes from the latest checkpoint: parameters,
optimizer state, step, RNG and the data iterator's position, so a stopped and resumed
run produces the same losses as one that was never stopped.
"""

import functools
import math
import pathlib
import signal
import time

import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import ml_collections
import numpy as np
import tqdm

from memgpt_jax import config_lib
from memgpt_jax.data.pipeline import make_eval_iterator, make_train_iterator
from memgpt_jax.data.tokenizer import make_tokenizer
from memgpt_jax.errors import ConfigError, UserError
from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.transformer import MemGPT
from memgpt_jax.training import steps
from memgpt_jax.training.checkpointing import Checkpointer, first_difference
from memgpt_jax.training.metrics_writer import MetricsWriter
from memgpt_jax.training.optimizer import learning_rate_schedule, make_optimizer


class _StopSignal:
  """SIGTERM (preemption) asks the loop to checkpoint and stop after the current step."""

  def __init__(self):
    self.requested = False
    self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def restore(self):
    signal.signal(signal.SIGTERM, self._previous)


def make_mesh() -> Mesh:
  """One data-parallel axis over every device of every process."""
  return Mesh(np.asarray(jax.devices()), ('data',))


def abstract_train_state(model: MemGPT, optimizer, seed: int):
  """Shapes and dtypes of the train state, without computing it."""
  return jax.eval_shape(functools.partial(steps.init_train_state, model, optimizer, seed, 1))


def _with_sharding(abstract, sharding):
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract)


def restore_compatible(checkpointer: Checkpointer, config: ml_collections.ConfigDict,
                       abstract, vocab_size: int, sharding, workdir: pathlib.Path):
  """Restores the latest checkpoint, refusing one made by another model shape."""
  saved_config = checkpointer.restore_config()
  saved_model = MemGPT(ModelConfig.from_config(saved_config.model, vocab_size))
  saved = abstract_train_state(saved_model, make_optimizer(saved_config.train),
                               saved_config.seed)
  same = jax.tree.structure(saved.params) == jax.tree.structure(abstract.params) and all(
      a.shape == b.shape for a, b in zip(jax.tree.leaves(saved.params),
                                         jax.tree.leaves(abstract.params)))
  if not same:
    raise UserError(f'{workdir} holds a checkpoint of another model shape '
                    f'({first_difference(saved_config, config)}): use a new --workdir '
                    'or the same model settings')
  return checkpointer.restore(_with_sharding(abstract, sharding))


class Evaluator:
  """Loss, perplexity, exact bits per byte, accuracy and pointer use on a fixed split."""

  def __init__(self, config, tokenizer, model: MemGPT, mesh: Mesh, split: str = 'validation'):
    self._data = make_eval_iterator(config, tokenizer, split)
    self._tokenizer = tokenizer
    self._mesh = mesh
    replicated = NamedSharding(mesh, PartitionSpec())
    self._step = jax.jit(functools.partial(steps.eval_step, model=model),
                         in_shardings=(replicated, NamedSharding(mesh, PartitionSpec('data'))),
                         out_shardings=replicated)

  def __call__(self, params) -> dict[str, float]:
    totals, num_bytes = {}, 0
    for batch in self._data:
      num_bytes += self._tokenizer.num_bytes(batch['targets'][batch['mask'] > 0])
      sums = jax.device_get(self._step(params, global_batch(batch, self._mesh)))
      totals = {k: totals.get(k, 0.0) + float(v) for k, v in sums.items()}
    if jax.process_count() > 1:
      num_bytes = int(multihost_utils.process_allgather(np.int64(num_bytes)).sum())
    tokens = max(totals.pop('tokens'), 1.0)
    loss = totals.pop('nll') / tokens
    metrics = {'loss': loss, 'perplexity': math.exp(min(loss, 50.0)),
               'accuracy': totals.pop('correct') / tokens}
    if num_bytes:
      metrics['bits_per_byte'] = loss * tokens / math.log(2) / num_bytes
    return metrics | {k: v / tokens for k, v in totals.items()}


def global_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """This host's rows -> one array sharded over the data axis of all hosts."""
  sharding = NamedSharding(mesh, PartitionSpec('data'))
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def _format(metrics: dict[str, float]) -> str:
  return ' '.join(f'{k}={v:.4g}' for k, v in metrics.items())


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
  """Trains (or resumes) in `workdir`; returns the last evaluation's metrics."""
  workdir = pathlib.Path(workdir)
  if workdir.exists() and not workdir.is_dir():
    raise UserError(f'--workdir {workdir} exists and is not a directory')
  tokenizer = make_tokenizer(config.data)
  model_config = config_lib.validate(config, tokenizer.vocab_size, jax.process_count())
  mesh = make_mesh()
  train = config.train
  if train.batch_size % mesh.size:
    raise ConfigError(f'train.batch_size={train.batch_size} is not divisible by the '
                      f'{mesh.size} devices')
  model = MemGPT(model_config, deterministic=model_config.dropout_rate == 0.0)
  eval_model = MemGPT(model_config)
  optimizer = make_optimizer(train)
  replicated = NamedSharding(mesh, PartitionSpec())

  # Everything that can fail on bad input fails here, before the workdir is written.
  train_data = make_train_iterator(config, tokenizer)
  evaluator = Evaluator(config, tokenizer, eval_model, mesh)
  checkpointer = Checkpointer(workdir, keep=train.keep_checkpoints,
                              async_save=train.async_checkpointing)
  abstract = abstract_train_state(model, optimizer, config.seed)
  if checkpointer.latest_step() is not None:
    state, data_state = restore_compatible(checkpointer, config, abstract,
                                           tokenizer.vocab_size, replicated, workdir)
    train_data.set_state(data_state)
  else:
    init = functools.partial(steps.init_train_state, model, optimizer, config.seed, 1)
    state = jax.jit(init, out_shardings=replicated)()
  if jax.process_index() == 0:
    (workdir / 'config.json').write_text(config.to_json_best_effort(indent=2) + '\n')

  train_step = jax.jit(
      functools.partial(steps.train_step, model=model, optimizer=optimizer,
                        z_loss=train.z_loss),
      in_shardings=(replicated, NamedSharding(mesh, PartitionSpec('data'))),
      out_shardings=(replicated, replicated), donate_argnums=0)
  schedule = learning_rate_schedule(train)
  writer = MetricsWriter(workdir)
  stop = _StopSignal()
  step = int(state.step)
  tokens_per_step = train.batch_size * model_config.seq_len
  progress = tqdm.tqdm(total=train.num_steps, initial=step, unit='step', dynamic_ncols=True,
                       disable=jax.process_index() != 0)
  eval_metrics, pending, timer = {}, [], None
  try:
    while step < train.num_steps:
      state, metrics = train_step(state, global_batch(next(train_data), mesh))
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
        eval_metrics = evaluator(state.params)
        writer.write(step, 'validation', eval_metrics)
        progress.write(f'step {step} validation: {_format(eval_metrics)}')
      stopping = stop.requested or step == train.stop_at_step
      if step % train.checkpoint_every == 0 or step == train.num_steps or stopping:
        checkpointer.save(step, state, train_data.get_state(), config)
      timer = (timer[0] + time.perf_counter() - pause_start, timer[1])
      if stopping:
        progress.write(f'stopped at step {step}; run again on {workdir} to resume')
        break
    if not eval_metrics and step >= train.num_steps:  # resumed a finished run
      eval_metrics = evaluator(state.params)
  finally:
    progress.close()
    stop.restore()
    checkpointer.wait()
    checkpointer.close()
    writer.close()
  return eval_metrics
