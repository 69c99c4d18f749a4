"""The workdir a run owns: its layout, the lock a trainer holds on it, and the one
precedence a run starts from.

Layout (every program reads and writes these names from here):
  config.json            the config of the latest run (the checkpoints keep their own)
  metrics.jsonl          one JSON object per log line (memgpt_jax.training.metrics_writer)
  tensorboard/           the same metrics for TensorBoard
  checkpoints/<step>/    Orbax checkpoints (memgpt_jax.training.checkpointing)
  <tokenizer files>      a SentencePiece model trained for this run (memgpt_jax.data.tokenizer)
  train.lock             held while a trainer runs: its host and process id

One trainer at a time: a second one on the same workdir would overwrite the
first's checkpoints and interleave its metrics. Readers (memgpt-sample) take no lock.

A run starts from (restore_or_init): this workdir's newest checkpoint that restores,
else the parameters of config.init_from, else step 0. Readers (sampling, fine-tuning's
init_from, the experiments) take the newest checkpoint that restores, parameters only.
"""

import contextlib
import fcntl
import json
import os
import pathlib
import shutil
import socket
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
from jax.experimental import multihost_utils
import ml_collections

from memgpt_jax.data.pipeline import data_fingerprint
from memgpt_jax.data.tokenizer import MODEL_FILENAME, make_tokenizer
from memgpt_jax.errors import UserError
from memgpt_jax.training import checkpointing
from memgpt_jax.training.checkpointing import Checkpointer, NonFinite, Restored
from memgpt_jax.training.partitioner import JitPartitioner
from memgpt_jax.training.steps import TrainState

CONFIG = 'config.json'
METRICS = 'metrics.jsonl'
TENSORBOARD = 'tensorboard'
CHECKPOINTS = 'checkpoints'
LOCK = 'train.lock'


def _holder(path: pathlib.Path) -> str:
  """'process 123 on host h since 2026-01-01 10:00:00 UTC', from a lock file's text."""
  try:
    held = json.loads(path.read_text())
    return f"process {held['pid']} on host {held['host']} since {held['since']}"
  except (OSError, ValueError, KeyError, TypeError):
    return 'another process'


def _open_locked(path: pathlib.Path) -> int:
  """An fd of `path` holding an exclusive lock; UserError if another process holds it.

  flock is released by the kernel when its holder dies, however it dies, so a lock
  file left by a killed trainer is stale by construction and is simply taken over.
  """
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      raise UserError(f'{path.parent} is in use by {_holder(path)}: one trainer per '
                      f'workdir (remove {path} only if no such process runs)') from None
    # The holder before us may have removed the file between our open and our lock:
    # then we hold a lock on a name nobody else sees; open it again.
    try:
      if os.stat(path).st_ino == os.fstat(fd).st_ino:
        return fd
    except FileNotFoundError:
      pass
    os.close(fd)


@contextlib.contextmanager
def locked(workdir: pathlib.Path, active: bool = True):
  """Holds `workdir`'s lock for the body (only where `active`: process 0 of a run).

  Creates the workdir. A run that fails before it starts (before it writes its
  config.json) leaves no trace in a workdir this made, not even the SentencePiece
  model it trained or inherited.
  """
  if not active:
    yield
    return
  created = not workdir.exists()
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / LOCK
    fd = _open_locked(path)
  except PermissionError as error:
    raise UserError(f'--workdir {workdir} is not writable ({error.strerror})') from None
  try:
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({
        'host': socket.gethostname(), 'pid': os.getpid(),
        'since': time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}).encode())
    yield
  finally:
    path.unlink(missing_ok=True)
    os.close(fd)
    if created and not (workdir / CONFIG).exists():
      shutil.rmtree(workdir, ignore_errors=True)


def checkpointer(workdir: str | pathlib.Path, keep: int = 3,
                 async_save: bool = True) -> Checkpointer:
  """The Checkpointer of `workdir`'s checkpoints/."""
  return Checkpointer(pathlib.Path(workdir) / CHECKPOINTS, keep, async_save)


def has_checkpoint(workdir: str | pathlib.Path) -> bool:
  """Whether a run in `workdir` resumes (a finished save exists) rather than starts."""
  return bool(checkpointing.finished_steps(
      pathlib.Path(workdir).expanduser().resolve() / CHECKPOINTS))


def _checkpoint_steps(path: str | pathlib.Path) -> tuple[pathlib.Path, list[int]]:
  """(checkpoints directory, steps) that `path` names: a workdir or its checkpoints/
  (all their steps), or one step (checkpoints/<step>)."""
  path = pathlib.Path(path).expanduser().resolve()
  for directory in (path / CHECKPOINTS, path):
    if steps := checkpointing.finished_steps(directory):
      return directory, steps
  if path.name.isdigit() and int(path.name) in checkpointing.finished_steps(path.parent):
    return path.parent, [int(path.name)]
  raise UserError(f'--config.init_from {path} holds no checkpoint: give a workdir, '
                  'its checkpoints/ or one checkpoints/<step> of a finished save')


# How often a reader lists the checkpoints again when every one it listed failed and a
# trainer has meanwhile saved newer ones (and rotated the listed ones away).
_RELISTS = 10


def _restore_newest(path: str | pathlib.Path,
                    restore: Callable[[pathlib.Path], Restored]) -> Restored:
  """restore(step directory) for the newest checkpoint at `path` (see
  _checkpoint_steps) that restores; older ones are tried when newer are damaged. A
  trainer writing `path` meanwhile may delete the listed ones (keep-N rotation): when
  none restores and newer steps have appeared, they are listed and tried."""
  directory, steps = _checkpoint_steps(path)
  for relist in range(_RELISTS + 1):
    try:
      return checkpointing.newest_that_restores(
          steps, lambda step: restore(directory / str(step)), str(path))[1]
    except UserError:
      listed, (directory, steps) = steps, _checkpoint_steps(path)
      if relist == _RELISTS or max(steps) <= max(listed):  # damage or a refusal
        raise


def load_params(path: str | pathlib.Path, abstract_params):
  """The params of the newest checkpoint at `path` that restores, laid out as
  `abstract_params` says (see checkpointing.read_params)."""
  return _restore_newest(path, lambda step_dir: checkpointing.read_params(step_dir,
                                                                          abstract_params))


def saved_config(path: str | pathlib.Path) -> ml_collections.ConfigDict:
  """The config of the newest checkpoint at `path` whose config reads."""
  return _restore_newest(path, checkpointing.read_config)


def read_model(step_dir: pathlib.Path, workdir: str | pathlib.Path,
               sharding: jax.sharding.Sharding):
  """-> (model, params, tokenizer, config) of one step directory of `workdir`: the
  config saved with it rebuilds the model and the tokenizer its parameters fit; the
  parameters alone are read, laid out on `sharding` (NonFinite if they hold NaN or inf)."""
  config = checkpointing.read_config(step_dir)
  tokenizer = make_tokenizer(config.data, workdir)
  model, abstract = checkpointing.abstract_params(config, tokenizer.vocab_size, sharding)
  return model, checkpointing.read_params(step_dir, abstract), tokenizer, config


def newest_model(workdir: str | pathlib.Path, sharding: jax.sharding.Sharding):
  """read_model of `workdir`'s newest checkpoint that restores: what a reader samples."""
  return _restore_newest(workdir, lambda step_dir: read_model(step_dir, workdir, sharding))


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


class Start(NamedTuple):
  """Where a run starts: its train state (global layout), whether it resumes this
  workdir's run, lines saying what was restored for the trainer to print, and the
  (step, metrics) of the steps after the last metrics row (saved with the checkpoint)."""
  state: TrainState
  resumed: bool
  notes: tuple[str, ...]
  window: tuple[tuple[int, dict[str, float]], ...] = ()


def restore_or_init(config: ml_collections.ConfigDict, workdir: pathlib.Path,
                    partitioner: JitPartitioner, train_data) -> Start:
  """The one precedence: this workdir's newest checkpoint that restores (a resume:
  parameters, optimizer state, step, RNG and `train_data`'s position), else the
  parameters of config.init_from (fine-tuning: a fresh optimizer state, data order and
  step count), else step 0. `partitioner` gives the global layout and the fresh state.

  Writes nothing before a failure: init_from is read before any directory is made.
  """
  if has_checkpoint(workdir):
    resumer = checkpointer(workdir, async_save=False)
    try:
      state, notes = _resume(resumer, config, partitioner, workdir, train_data)
      window = tuple(resumer.restore_window(int(state.step)))
    finally:
      resumer.close()
    return Start(state, True, notes + (f'resuming from step {int(state.step)} of {workdir}',),
                 window)
  if config.init_from:
    abstract = partitioner.abstract_state.params
    fresh = partitioner.init_state()
    if (config.model.arch == 'encoder_decoder'
        and saved_config(config.init_from).model.arch == 'decoder'):
      lm = load_params(config.init_from, decoder_only_part(abstract))
      return Start(fresh.replace(params=warm_started(fresh.params, lm)), False, (
          f'initialised the decoder and the encoder from the language model at '
          f'{config.init_from} (cross-attention fresh)',))
    params = load_params(config.init_from, abstract)
    return Start(fresh.replace(params=params), False,
                 (f'initialised the parameters from {config.init_from}',))
  return Start(partitioner.init_state(), False, ())


def _is_cross_attention(name: str) -> bool:
  """An encoder-decoder's parameters that read the encoder (a language model has none)."""
  return name.startswith(('cross_attention', 'source_keys_values_')) or name == 'encoder'


def decoder_only_part(params: dict) -> dict:
  """The parameters of an encoder-decoder that a decoder-only model of its settings
  has, under the same names: all but the encoder and the cross-attention."""
  return {name: {key: value for key, value in tree.items() if not _is_cross_attention(key)}
          if name.startswith('blocks_') else tree
          for name, tree in params.items() if not _is_cross_attention(name)}


def warm_started(fresh: dict, lm: dict) -> dict:
  """An encoder-decoder's parameters from a language model's (T5's warm start): the
  decoder is the language model, the encoder its first layers (blocks, memories, final
  norm); the cross-attention keeps its fresh initialisation."""
  params = {**fresh, **{name: tree if not name.startswith('blocks_') else
                        {**fresh[name], **tree} for name, tree in lm.items()}}
  encoder = dict(fresh['encoder'])
  for name in encoder.keys() & lm.keys():  # copies: the step donates every buffer once
    encoder[name] = jax.tree.map(jax.numpy.copy, lm[name])
  return {**params, 'encoder': encoder}


def _named(fingerprint: dict[str, str]) -> str:
  return ', '.join(f'{task}: {name}' if task else name for task, name in fingerprint.items())


def _resume(resumer: Checkpointer, config: ml_collections.ConfigDict,
            partitioner: JitPartitioner, workdir: pathlib.Path,
            train_data) -> tuple[TrainState, tuple[str, ...]]:
  """The newest checkpoint that restores, in the partitioner's global layout, whatever
  mesh and processes wrote it. Refuses (UserError, naming the key) a checkpoint whose
  config differs in a setting a resume may not change (checkpointing.RESUMABLE).
  `train_data` continues from its saved position when as many processes wrote it.
  Newer checkpoints that did not restore are set aside (renamed, not deleted)."""
  data = data_fingerprint(config)

  def restore(step: int):
    conflict = checkpointing.resume_conflict(resumer.restore_config(step), config)
    if conflict:
      raise UserError(f'{workdir} holds a run with {conflict}: a resume may change only '
                      'the settings docs/reliability.md "Resuming" lists; use a new --workdir (or '
                      f'--config.init_from={workdir} to fine-tune from it)')
    topology = resumer.restore_topology(step)
    if topology.get('data', data) != data:
      raise UserError(f'{workdir} was trained on other data ({_named(topology["data"])}; now '
                      f'{_named(data)}): a text file edited since, say. Restore it, or use a '
                      f'new --workdir (--config.init_from={workdir} fine-tunes from it)')
    saved_processes = topology['process_count']
    position = train_data if saved_processes == jax.process_count() else None
    state = resumer.restore(partitioner.abstract_state, position, step)
    if not checkpointing.all_finite(state.params):
      raise NonFinite('its parameters hold NaN or inf')
    return state, saved_processes

  step, (state, saved_processes) = checkpointing.newest_that_restores(
      resumer.all_steps(), restore, str(workdir))
  notes = []
  if saved_processes != jax.process_count():
    notes.append(f'{workdir}: checkpoint written by {saved_processes} processes, restored '
                 f'on {jax.process_count()}; each process reads its data shard from the start')
    if state.carry is not None:  # the streams start again: so does their model state
      state = state.replace(carry=partitioner.init_state().carry)
  if jax.process_index() == 0:
    notes.extend(f'set aside {path.name} (did not restore); training continues from step '
                 f'{step}' for path in resumer.set_aside_after(step))
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('checkpoints set aside')
  return state, tuple(notes)
