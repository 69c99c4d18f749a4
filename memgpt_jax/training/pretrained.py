"""Parameters only, from another run's checkpoint: to fine-tune from it or sample it.

Unlike a resume (memgpt_jax.training.checkpointing), this reads neither the
optimizer state, the step, the RNG nor the data position, only the params subtree
of the saved train state, so the new run may use another optimizer, mesh or
number of processes. Nothing is written to the source checkpoint.
"""

import pathlib
import shutil

import jax
import ml_collections
import orbax.checkpoint as ocp

from memgpt_jax.data.tokenizer import MODEL_FILENAME
from memgpt_jax.errors import UserError


def _finished_steps(directory: pathlib.Path) -> list[int]:
  """The committed steps a Checkpointer wrote to `directory` (not the ones in flight)."""
  if not directory.is_dir():
    return []
  return [int(p.name) for p in ocp.path.step.checkpoint_steps_paths(directory)
          if p.name.isdigit()]


def step_directory(path: str | pathlib.Path) -> pathlib.Path:
  """The step directory `path` names: a workdir or its checkpoints/ (their latest
  step), or one step (checkpoints/<step>)."""
  path = pathlib.Path(path).expanduser().resolve()
  for directory in (path / 'checkpoints', path):
    if steps := _finished_steps(directory):
      return directory / str(max(steps))
  if path.name.isdigit() and int(path.name) in _finished_steps(path.parent):
    return path
  raise UserError(f'--config.init_from {path} holds no checkpoint: give a workdir, '
                  'its checkpoints/ or one checkpoints/<step> of a finished save')


def saved_config(path: str | pathlib.Path) -> ml_collections.ConfigDict:
  """The config that made the checkpoint: it rebuilds the model the params fit."""
  config = ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(
      step_directory(path) / 'config')
  return ml_collections.ConfigDict(config)


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


def params_mismatch(path: str | pathlib.Path, abstract_params) -> str | None:
  """The first parameter whose name or shape differs between the checkpoint at `path`
  and `abstract_params` (read from the checkpoint's metadata), or None."""
  handler = ocp.PyTreeCheckpointHandler()
  try:
    saved = handler.metadata(step_directory(path) / 'state').tree['params']
  finally:
    handler.close()
  return _first_mismatch(saved, abstract_params)


def load_params(path: str | pathlib.Path, abstract_params):
  """The saved params, laid out as `abstract_params` says (ShapeDtypeStructs with
  the shardings the new run wants; numpy arrays where a leaf has no sharding);
  refuses params of another model shape, naming the first parameter that differs."""
  state_dir = step_directory(path) / 'state'
  mismatch = params_mismatch(path, abstract_params)
  handler = ocp.PyTreeCheckpointHandler()
  try:
    if mismatch:
      raise UserError(f'init_from: {mismatch} (from {state_dir.parent}): the model '
                      'settings must match the ones it was trained with')
    # partial_restore: the handler trims the saved tree to `item` before reading,
    # so opt_state, step and rng are never read.
    item = {'params': abstract_params}
    restored = handler.restore(state_dir, args=ocp.args.PyTreeRestore(
        item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item),
        partial_restore=True))
  finally:
    handler.close()
  return restored['params']


def has_checkpoint(workdir: str | pathlib.Path) -> bool:
  """Whether a run in `workdir` resumes (a finished save exists) rather than starts."""
  return bool(_finished_steps(pathlib.Path(workdir).expanduser().resolve() / 'checkpoints'))


def inherit_tokenizer(path: str | pathlib.Path, workdir: str | pathlib.Path) -> None:
  """Fine-tuning keeps the pretrained model's vocabulary: copies the SentencePiece model
  of the run that wrote the checkpoint at `path` into a new `workdir` (a new one would
  be trained on the fine-tuning data and give the same ids other meanings)."""
  source = step_directory(path).parents[1] / MODEL_FILENAME
  target = pathlib.Path(workdir) / MODEL_FILENAME
  if not source.is_file():
    raise UserError(f'--config.init_from {path}: its run has no {MODEL_FILENAME} to fine-tune '
                    'with; set data.sentencepiece.model_file')
  if not target.exists():
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix('.partial')
    shutil.copyfile(source, partial)
    partial.replace(target)
