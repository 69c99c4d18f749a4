"""The workdir a training run owns, and the lock it holds on it.

Layout (every program reads and writes these names from here):
  config.json            the config of the latest run (the checkpoints keep their own)
  metrics.jsonl          one JSON object per log line (memgpt_jax.training.metrics_writer)
  tensorboard/           the same metrics for TensorBoard
  checkpoints/<step>/    Orbax checkpoints (memgpt_jax.training.checkpointing)
  <tokenizer files>      a SentencePiece model trained for this run (memgpt_jax.data.tokenizer)
  train.lock             held while a trainer runs: its host and process id

One trainer at a time: a second one on the same workdir would overwrite the
first's checkpoints and interleave its metrics. Readers (memgpt-sample) take no lock.
"""

import contextlib
import fcntl
import json
import os
import pathlib
import socket
import time

from memgpt_jax.errors import UserError

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

  Creates the workdir; a failure before anything else was written there leaves no
  trace (the workdir is removed again if this made it and it is empty).
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
    if created and not any(workdir.iterdir()):
      workdir.rmdir()
