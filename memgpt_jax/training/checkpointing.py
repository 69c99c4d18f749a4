"""Orbax checkpoints of everything a resume needs: the train state (params, optimizer
state, step, RNG), every process's data iterator position, the config that made
them, and the topology (processes, mesh) that wrote them.

Every process calls save and restore: each writes the shards of the state its
devices own and its own iterator position. A state restores onto any mesh and
any number of processes (give the new shardings); iterator positions only onto
as many processes as wrote them, since each process reads its own shard of the data.
"""

import pathlib

import grain.checkpoint
import ml_collections
import orbax.checkpoint as ocp


class Checkpointer:
  """One workdir's CheckpointManager: async saves, keep-N, latest-step restore."""

  def __init__(self, workdir: str | pathlib.Path, keep: int = 3, async_save: bool = True):
    self.directory = pathlib.Path(workdir).resolve() / 'checkpoints'
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save),
        item_names=('state', 'data', 'config', 'topology'),
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state, data_iterator, config: ml_collections.ConfigDict,
           topology: dict):
    """`state` as global jax.Arrays; a Grain `data_iterator` or None (no data
    position); `topology`: {'process_count': P, 'mesh': {...}, ...}."""
    args = {'state': ocp.args.StandardSave(state),
            'config': ocp.args.JsonSave(config.to_dict()),
            'topology': ocp.args.JsonSave(topology)}
    if data_iterator is not None:
      args['data'] = grain.checkpoint.CheckpointSave(data_iterator)
    self._manager.save(step, args=ocp.args.Composite(**args), force=True)

  def restore_config(self, step: int | None = None) -> ml_collections.ConfigDict:
    step = self.latest_step() if step is None else step
    restored = self._manager.restore(step, args=ocp.args.Composite(
        config=ocp.args.JsonRestore()))
    return ml_collections.ConfigDict(restored['config'])

  def restore_topology(self, step: int | None = None) -> dict:
    step = self.latest_step() if step is None else step
    return self._manager.restore(step, args=ocp.args.Composite(
        topology=ocp.args.JsonRestore()))['topology']

  def restore(self, abstract_state, data_iterator=None, step: int | None = None):
    """The state of `step` (default: the latest) laid out as `abstract_state` says
    (ShapeDtypeStructs with shardings). A `data_iterator` is moved to where this
    process's iterator was: the checkpoint must come from as many processes."""
    step = self.latest_step() if step is None else step
    args = {'state': ocp.args.StandardRestore(abstract_state)}
    if data_iterator is not None:
      args['data'] = grain.checkpoint.CheckpointRestore(data_iterator)
    return self._manager.restore(step, args=ocp.args.Composite(**args))['state']

  def wait(self):
    self._manager.wait_until_finished()

  def close(self):
    self._manager.close()


def _flatten(value, prefix: str = '') -> dict:
  if isinstance(value, dict):
    return {k: v for key, sub in value.items()
            for k, v in _flatten(sub, f'{prefix}{key}.').items()}
  return {prefix.rstrip('.'): value}


def first_difference(saved: ml_collections.ConfigDict,
                     current: ml_collections.ConfigDict) -> str:
  """'model.d_model=256 there, 128 here' for the first setting where two configs differ."""
  old, new = _flatten(saved.to_dict()), _flatten(current.to_dict())
  for key in sorted(old.keys() | new.keys()):
    if key.startswith(('model.', 'data.tokenizer')) and old.get(key) != new.get(key):
      return f'{key}={old.get(key)!r} there, {new.get(key)!r} here'
  return 'the parameter shapes differ'
