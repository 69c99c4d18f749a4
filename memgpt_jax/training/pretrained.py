"""Parameters only, from another run's checkpoint: to fine-tune from it or sample it.

Unlike a resume (memgpt_jax.training.checkpointing), this reads neither the
optimizer state, the step, the RNG nor the data position, only the params subtree
of the saved train state, so the new run may use another optimizer, mesh or
number of processes. Nothing is written to the source checkpoint.
"""

import pathlib
import shutil
from collections.abc import Callable

import flax.linen as nn
import jax
import ml_collections
import orbax.checkpoint as ocp

from memgpt_jax.data.tokenizer import MODEL_FILENAME, make_tokenizer
from memgpt_jax.errors import UserError
from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.transformer import MemGPT
from memgpt_jax.training import workdir as workdir_lib
from memgpt_jax.training.checkpointing import NonFinite, Restored, all_finite, newest_that_restores


def finished_steps(directory: pathlib.Path) -> list[int]:
  """The committed steps a Checkpointer wrote to `directory` (not the ones in flight)."""
  if not directory.is_dir():
    return []
  return [int(p.name) for p in ocp.path.step.checkpoint_steps_paths(directory)
          if p.name.isdigit()]


def _checkpoint_steps(path: str | pathlib.Path) -> tuple[pathlib.Path, list[int]]:
  """(checkpoints directory, steps) that `path` names: a workdir or its checkpoints/
  (all their steps), or one step (checkpoints/<step>)."""
  path = pathlib.Path(path).expanduser().resolve()
  for directory in (path / workdir_lib.CHECKPOINTS, path):
    if steps := finished_steps(directory):
      return directory, steps
  if path.name.isdigit() and int(path.name) in finished_steps(path.parent):
    return path.parent, [int(path.name)]
  raise UserError(f'--config.init_from {path} holds no checkpoint: give a workdir, '
                  'its checkpoints/ or one checkpoints/<step> of a finished save')


def restore_newest(path: str | pathlib.Path,
                   restore: Callable[[pathlib.Path], Restored]) -> tuple[pathlib.Path, Restored]:
  """(step directory, restore(step directory)) for the newest checkpoint at `path`
  (see _checkpoint_steps) that restores; older ones are tried when newer are damaged."""
  directory, steps = _checkpoint_steps(path)
  step, restored = newest_that_restores(steps, lambda s: restore(directory / str(s)), str(path))
  return directory / str(step), restored


def read_config(step_dir: pathlib.Path) -> ml_collections.ConfigDict:
  """The config saved in one step directory: it rebuilds the model the params fit."""
  config = ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(step_dir / 'config')
  return ml_collections.ConfigDict(config)


def saved_config(path: str | pathlib.Path) -> ml_collections.ConfigDict:
  """The config of the newest checkpoint at `path` whose config reads."""
  return restore_newest(path, read_config)[1]


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


def abstract_params(config: ml_collections.ConfigDict, vocab_size: int,
                    sharding: jax.sharding.Sharding | None = None) -> tuple[MemGPT, dict]:
  """The model a config (e.g. one saved with a checkpoint) builds, and the shapes and
  dtypes of its parameters, traced without computing them or building an optimizer;
  every leaf laid out on `sharding` if given (where a checkpoint restores to)."""
  model = MemGPT(ModelConfig.from_config(config.model, vocab_size))
  tokens = jax.ShapeDtypeStruct((1, model.cfg.seq_len), jax.numpy.int32)
  params = nn.unbox(jax.eval_shape(lambda t: model.init(jax.random.PRNGKey(0), t), tokens))
  return model, jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), params['params'])


def read_params(step_dir: pathlib.Path, abstract_params):
  """The params saved in one step directory, laid out as `abstract_params` says
  (ShapeDtypeStructs with the shardings the new run wants; numpy arrays where a leaf
  has no sharding). UserError for params of another model shape, naming the first
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


def read_model(step_dir: pathlib.Path, workdir: str | pathlib.Path,
               sharding: jax.sharding.Sharding):
  """-> (model, params, tokenizer, config) of one step directory of `workdir`: the
  config saved with it rebuilds the model and the tokenizer its parameters fit; the
  parameters are laid out on `sharding` (NonFinite if they hold NaN or inf)."""
  config = read_config(step_dir)
  tokenizer = make_tokenizer(config.data, workdir)
  model, abstract = abstract_params(config, tokenizer.vocab_size, sharding)
  return model, read_params(step_dir, abstract), tokenizer, config


def load_params(path: str | pathlib.Path, abstract_params):
  """The params of the newest checkpoint at `path` that restores (see read_params)."""
  return restore_newest(path, lambda step_dir: read_params(step_dir, abstract_params))[1]


def has_checkpoint(workdir: str | pathlib.Path) -> bool:
  """Whether a run in `workdir` resumes (a finished save exists) rather than starts."""
  return bool(finished_steps(pathlib.Path(workdir).expanduser().resolve() /
                              workdir_lib.CHECKPOINTS))


def inherit_tokenizer(path: str | pathlib.Path, workdir: str | pathlib.Path) -> None:
  """Fine-tuning keeps the pretrained model's vocabulary: copies the SentencePiece model
  of the run that wrote the checkpoint at `path` into a new `workdir` (a new one would
  be trained on the fine-tuning data and give the same ids other meanings)."""
  directory, _ = _checkpoint_steps(path)
  source = directory.parent / MODEL_FILENAME
  target = pathlib.Path(workdir) / MODEL_FILENAME
  if not source.is_file():
    raise UserError(f'--config.init_from {path}: its run has no {MODEL_FILENAME} to fine-tune '
                    'with; set data.sentencepiece.model_file')
  if not target.exists():
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix('.partial')
    shutil.copyfile(source, partial)
    partial.replace(target)
