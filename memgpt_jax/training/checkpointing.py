"""Orbax checkpoints of everything a resume needs: the train state (params, optimizer
state, step, RNG), the data iterator's position, and the config that made them."""

import pathlib

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
        item_names=('state', 'data', 'config'),
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state, data_state: dict, config: ml_collections.ConfigDict):
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave(data_state),
        config=ocp.args.JsonSave(config.to_dict()),
    ), force=True)

  def restore_config(self, step: int | None = None) -> ml_collections.ConfigDict:
    step = self.latest_step() if step is None else step
    restored = self._manager.restore(step, args=ocp.args.Composite(
        config=ocp.args.JsonRestore()))
    return ml_collections.ConfigDict(restored['config'])

  def restore(self, abstract_state, step: int | None = None):
    """-> (state, data iterator state) of `step` (default: the latest)."""
    step = self.latest_step() if step is None else step
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        data=ocp.args.JsonRestore(),
    ))
    return restored['state'], restored['data']

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
