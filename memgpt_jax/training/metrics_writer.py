"""Metrics to JSONL (one strict-JSON object per line) and TensorBoard, from process 0."""

import json
import math
import pathlib

import jax
import tensorboardX
from tensorboardX.proto import summary_pb2

from memgpt_jax.training import workdir as workdir_lib


def _json_value(value) -> float | None:
  """NaN and inf are not JSON: they are written as null."""
  value = float(value)
  return value if math.isfinite(value) else None


def _drop_after(path: pathlib.Path, step: int):
  """Keeps the records of steps <= `step`: a resumed run logs the later ones again."""
  if not path.exists():
    return
  kept = [line for line in path.read_text(encoding='utf-8').splitlines(keepends=True)
          if line.strip() and json.loads(line)['step'] <= step]
  partial = path.with_suffix('.partial')
  partial.write_text(''.join(kept), encoding='utf-8')
  partial.replace(path)


class MetricsWriter:
  """Appends to a workdir's metrics; `resume_step` N first forgets what was logged
  after step N (the steps the resumed run repeats), in the JSONL file and TensorBoard."""

  def __init__(self, workdir: str | pathlib.Path, resume_step: int | None = None):
    self._active = jax.process_index() == 0
    if not self._active:
      return
    workdir = pathlib.Path(workdir)
    path = workdir / workdir_lib.METRICS
    if resume_step is not None:
      _drop_after(path, resume_step)
    self._jsonl = open(path, 'a', encoding='utf-8')
    self._tensorboard = tensorboardX.SummaryWriter(
        str(workdir / workdir_lib.TENSORBOARD),
        purge_step=None if resume_step is None else resume_step + 1)

  def write(self, step: int, split: str, metrics: dict[str, float]):
    if not self._active:
      return
    record = {'step': int(step), 'split': split,
              **{k: _json_value(v) for k, v in metrics.items()}}
    self._jsonl.write(json.dumps(record, allow_nan=False) + '\n')
    self._jsonl.flush()
    # One event for all of a step's scalars: each event crosses two threads and a pipe
    # (tensorboardX's queue), a cost paid every train.log_every steps.
    summary = summary_pb2.Summary(value=[
        summary_pb2.Summary.Value(tag=f'{split}/{name}', simple_value=float(number))
        for name, number in metrics.items()])
    self._tensorboard.file_writer.add_summary(summary, int(step))

  def close(self):
    if self._active:
      self._jsonl.close()
      self._tensorboard.close()


def read_metrics(workdir: str | pathlib.Path, split: str | None = None) -> list[dict]:
  """The records of a workdir's metrics.jsonl, optionally of one split."""
  path = pathlib.Path(workdir) / workdir_lib.METRICS
  records = [json.loads(line) for line in path.read_text().splitlines() if line]
  return [r for r in records if split is None or r['split'] == split]
