"""Orbax checkpoints, one directory per step: everything a resume needs (the train
state: params, optimizer state, step, RNG; every process's data iterator position),
the config that made them, and the topology (processes, mesh) that wrote them.

Every process calls save and restore: each writes the shards of the state its
devices own and its own iterator position. A state restores onto any mesh and
any number of processes (give the new shardings); iterator positions only onto
as many processes as wrote them, since each process reads its own shard of the data.
The parameters alone also restore (read_params): to fine-tune from them or sample
them, with another optimizer, mesh or number of processes.

Which checkpoint a run starts from is memgpt_jax.training.workdir's to decide.
"""

import json
import math
import pathlib
import shutil
from collections.abc import Callable, Sequence
from typing import TypeVar

from absl import logging
import flax.linen as nn
import grain.checkpoint
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from memgpt_jax import config_lib
from memgpt_jax.errors import SaveFailed, UserError
from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.transformer import MemGPT, init_tokens

Restored = TypeVar('Restored')


class Checkpointer:
  """A CheckpointManager over one directory of step directories (a workdir's
  checkpoints/): async saves, keep-N, latest-step restore."""

  def __init__(self, directory: str | pathlib.Path, keep: int = 3, async_save: bool = True):
    self.directory = pathlib.Path(directory).resolve()
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save),
        item_names=('state', 'data', 'config', 'topology', 'window'),
    )
    self._saving = None  # (step, bytes of its state) of the latest save

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def set_aside_after(self, step: int) -> list[pathlib.Path]:
    """Renames the step directories after `step` (ones that did not restore) to
    <step>.unrestorable, kept for inspection: the run saves those steps again."""
    moved = []
    for later in (s for s in self.all_steps() if s > step):
      source = self.directory / str(later)
      target = source.with_name(f'{later}.unrestorable')
      suffix = 0
      while target.exists():
        suffix += 1
        target = source.with_name(f'{later}.unrestorable.{suffix}')
      source.rename(target)
      moved.append(target)
    self.reload()
    return moved

  def reload(self):
    """Reads the step list again (after another process changed it)."""
    self._manager.reload()

  def save(self, step: int, state, data_iterator, config: ml_collections.ConfigDict,
           topology: dict, window: Sequence[tuple[int, dict[str, float]]] = ()):
    """`state` as global jax.Arrays; a Grain `data_iterator` or None (no data
    position); `topology`: {'process_count': P, 'mesh': {...}, ...}; `window`: the
    (step, metrics) of the steps since the last metrics row, which a resume averages
    into its first row as an uninterrupted run would."""
    args = {'state': ocp.args.StandardSave(_without_empty(state)),
            'config': ocp.args.JsonSave(config.to_dict()),
            'topology': ocp.args.JsonSave(topology),
            'window': ocp.args.JsonSave({'steps': [[s, m] for s, m in window]})}
    if data_iterator is not None:
      args['data'] = grain.checkpoint.CheckpointSave(data_iterator)
    self.wait()  # a failure of the save still in flight is reported under its own step
    self._saving = (step, sum(x.nbytes for x in jax.tree.leaves(state)))
    try:
      self._manager.save(step, args=ocp.args.Composite(**args), force=True)
    except Exception as error:  # pylint: disable=broad-except; OSError, or tensorstore's
      raise self._failed(error) from None

  def restore_config(self, step: int | None = None) -> ml_collections.ConfigDict:
    step = self.latest_step() if step is None else step
    restored = self._manager.restore(step, args=ocp.args.Composite(
        config=ocp.args.JsonRestore()))
    return ml_collections.ConfigDict(restored['config'])

  def restore_topology(self, step: int | None = None) -> dict:
    step = self.latest_step() if step is None else step
    return self._manager.restore(step, args=ocp.args.Composite(
        topology=ocp.args.JsonRestore()))['topology']

  def restore_window(self, step: int) -> list[tuple[int, dict[str, float]]]:
    """The unlogged (step, metrics) saved with `step`; none from a checkpoint written
    before checkpoints kept them."""
    if not (self.directory / str(step) / 'window').exists():
      return []
    restored = self._manager.restore(step, args=ocp.args.Composite(
        window=ocp.args.JsonRestore()))['window']
    return [(int(s), metrics) for s, metrics in restored['steps']]

  def restore(self, abstract_state, data_iterator=None, step: int | None = None):
    """The state of `step` (default: the latest) laid out as `abstract_state` says
    (ShapeDtypeStructs with shardings). A `data_iterator` is moved to where this
    process's iterator was: the checkpoint must come from as many processes."""
    step = self.latest_step() if step is None else step
    args = {'state': ocp.args.StandardRestore(_without_empty(abstract_state))}
    if data_iterator is not None:
      args['data'] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = self._manager.restore(step, args=ocp.args.Composite(**args))['state']
    return jax.tree.map(lambda x, target: x if x is not None or target is None
                        else _empty(target), restored, abstract_state,
                        is_leaf=lambda x: x is None)

  def wait(self):
    """Until the save in flight is written; SaveFailed if its writing failed."""
    try:
      self._manager.wait_until_finished()
    except Exception as error:  # pylint: disable=broad-except; as in save
      raise self._failed(error) from None

  def _failed(self, error: Exception) -> SaveFailed:
    """The save in flight failed: removes its partial folder; the error to report."""
    step, state_bytes = self._saving
    for partial in self.directory.glob(f'{step}.orbax-checkpoint-tmp*'):
      shutil.rmtree(partial, ignore_errors=True)
    finished = [s for s in finished_steps(self.directory) if s < step]
    kept = f'step {max(finished)} is intact' if finished else 'no earlier checkpoint exists'
    return SaveFailed(f'could not save step {step} in {self.directory}: {_reason(error)} '
                      f'(a checkpoint needs about {state_bytes / 2**20:,.0f} MiB free); the '
                      f'partial save was removed and {kept}: make room and run again to resume')

  def close(self):
    self._manager.close()


def _without_empty(tree):
  """`tree` without its arrays of no elements (a carried pointer cache with the pointer
  off): Orbax writes none, so checkpoints leave them out and restore makes them again."""
  return jax.tree.map(lambda x: None if math.prod(x.shape) == 0 else x, tree)


def _empty(target: jax.ShapeDtypeStruct) -> jax.Array:
  """An array of no elements, laid out as `target` says."""
  return jax.make_array_from_callback(target.shape, target.sharding,
                                      lambda index: np.zeros(target.shape, target.dtype)[index])


@jax.jit
def _finite(leaves: list[jax.Array]) -> jax.Array:
  return jax.numpy.all(jax.numpy.stack([jax.numpy.isfinite(x).all() for x in leaves]))


def all_finite(tree) -> bool:
  """Whether every array of `tree` holds only finite values (works on sharded arrays;
  compiled once per tree structure)."""
  leaves = [x for x in jax.tree.leaves(tree) if jax.numpy.issubdtype(x.dtype, jax.numpy.inexact)]
  return bool(_finite(leaves)) if leaves else True


def _reason(error: Exception) -> str:
  """An exception as a short phrase: its first line, at most 120 characters."""
  text = (str(error).strip().splitlines() or [type(error).__name__])[0]
  return text if len(text) <= 120 else text[:117] + '...'


def newest_that_restores(steps: list[int], restore: Callable[[int], Restored],
                         where: str) -> tuple[int, Restored]:
  """(step, restore(step)) for the newest of `steps` whose restore succeeds.

  A step that fails to restore (a truncated or missing file, a garbage manifest,
  non-finite parameters) is skipped with a warning naming it; a UserError (a
  refusal, not damage) ends the search. UserError if no step restores.
  """
  skipped = []
  for step in sorted(steps, reverse=True):
    try:
      restored = restore(step)
    except UserError:
      raise
    except Exception as error:  # pylint: disable=broad-except; any damage: try an older one
      skipped.append(f'step {step} ({_reason(error)})')
      continue
    if skipped:
      logging.warning('%s: skipped checkpoints that do not restore: %s', where,
                      '; '.join(skipped))
    return step, restored
  if not skipped:
    raise UserError(f'{where} holds no checkpoint')
  raise UserError(f'{where}: no checkpoint restores: {"; ".join(skipped)}')


class NonFinite(ValueError):
  """Parameters holding NaN or inf: a checkpoint not worth restoring."""


def finished_steps(directory: pathlib.Path) -> list[int]:
  """The committed steps a Checkpointer wrote to `directory` (not the ones in flight)."""
  if not directory.is_dir():
    return []
  return [int(p.name) for p in ocp.path.step.checkpoint_steps_paths(directory)
          if p.name.isdigit()]


def read_config(step_dir: pathlib.Path) -> ml_collections.ConfigDict:
  """The config saved in one step directory: it rebuilds the model the params fit
  (settings added since it was saved at their defaults)."""
  config = ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(step_dir / 'config')
  return config_lib.with_defaults(config)


def abstract_params(config: ml_collections.ConfigDict, vocab_size: int,
                    sharding: jax.sharding.Sharding | None = None) -> tuple[MemGPT, dict]:
  """The model a config (e.g. one saved with a checkpoint) builds, and the shapes and
  dtypes of its parameters, traced without computing them or building an optimizer;
  every leaf laid out on `sharding` if given (where a checkpoint restores to)."""
  model = MemGPT(ModelConfig.from_config(config.model, vocab_size))
  params = nn.unbox(jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), init_tokens(model.cfg))))
  return model, jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), params['params'])


def _shapes(tree) -> dict[str, tuple[int, ...]]:
  """{'params/blocks_0/mlp/w1/kernel': shape} for every leaf of a params tree."""
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {'params/' + jax.tree_util.keystr(keys, simple=True, separator='/'):
          tuple(leaf.shape) for keys, leaf in leaves}


def _first_mismatch(saved, wanted) -> str | None:
  there, here = _shapes(saved), _shapes(wanted)
  for name in sorted(there.keys() | here.keys()):
    if name not in there:
      return f'{name} is not there, shape {here[name]} here'
    if name not in here:
      return f'{name} of shape {there[name]} there is not here'
    if there[name] != here[name]:
      return f'{name} has shape {there[name]} there, {here[name]} here'
  return None


def params_mismatch(step_dir: pathlib.Path, abstract_params) -> str | None:
  """The first parameter whose name or shape differs between the checkpoint in
  `step_dir` and `abstract_params` (read from the checkpoint's metadata), or None."""
  handler = ocp.PyTreeCheckpointHandler()
  try:
    saved = handler.metadata(step_dir / 'state').tree['params']
  finally:
    handler.close()
  return _first_mismatch(saved, abstract_params)


def read_params(step_dir: pathlib.Path, abstract_params):
  """The params saved in one step directory, laid out as `abstract_params` says
  (ShapeDtypeStructs with the shardings the new run wants; numpy arrays where a leaf
  has no sharding); neither the optimizer state, the step, the RNG nor the data
  position is read. UserError for params of another model shape, naming the first
  parameter that differs; NonFinite for params holding NaN or inf."""
  mismatch = params_mismatch(step_dir, abstract_params)
  if mismatch:
    raise UserError(f'init_from: {mismatch} (from {step_dir}): the model '
                    'settings must match the ones it was trained with')
  handler = ocp.PyTreeCheckpointHandler()
  try:
    # partial_restore: the handler trims the saved tree to `item` before reading,
    # so opt_state, step and rng are never read.
    item = {'params': abstract_params}
    restored = handler.restore(step_dir / 'state', args=ocp.args.PyTreeRestore(
        item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item),
        partial_restore=True))
  finally:
    handler.close()
  if not all_finite(restored['params']):
    raise NonFinite('its parameters hold NaN or inf')
  return restored['params']


# Settings a resume may change: how long to train (the learning rate follows the new
# num_steps' schedule from the current step on), how often to log, evaluate and save, how the
# batch is laid out on devices and in micro-batches (the same update), how the same
# math is computed (remat, attention kernel, segment unrolling, the delta rule's
# form), where data is read from and what is sampled. Everything else changes what
# is trained.
RESUMABLE = ('train.num_steps', 'train.stop_at_step', 'train.log_every', 'train.eval_every',
             'train.eval_batches', 'train.eval_documents', 'train.eval_position_buckets',
             'train.checkpoint_every', 'train.keep_checkpoints',
             'train.async_checkpointing', 'train.grad_accum_steps', 'train.generate_examples',
             'train.generate_max_tokens', 'data.read_threads', 'data.tfds_data_dir',
             'data.task_metrics', 'parallelism', 'mesh.', 'sample.', 'init_from',
             'model.remat', 'model.attention', 'model.segment_unroll',
             'model.memory.delta.write_form', 'model.memory.delta.chunk_size')


def resume_conflict(saved: ml_collections.ConfigDict,
                    current: ml_collections.ConfigDict) -> str | None:
  """'train.learning_rate=0.002 there, 0.01 here' for the first setting that differs
  between a checkpoint's config and this run's and may not change on resume; or None.
  A setting the checkpoint's config lacks (added to configs/default.py since) counts as
  its default there."""
  old, new = (json.loads(json.dumps(c.to_dict(), default=str))  # tuples are lists
              for c in (saved, current))
  old, new = config_lib.flat_with_defaults(old), config_lib.flatten(new)
  for key in sorted(old.keys() | new.keys()):
    if not key.startswith(RESUMABLE) and old.get(key) != new.get(key):
      return f'{key}={old.get(key)!r} there, {new.get(key)!r} here'
  return None
