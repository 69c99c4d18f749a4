"""Metrics to JSONL (one object per line) and TensorBoard, from process 0 only."""

import json
import pathlib

import jax
import tensorboardX


class MetricsWriter:

  def __init__(self, workdir: str | pathlib.Path):
    self._active = jax.process_index() == 0
    if not self._active:
      return
    workdir = pathlib.Path(workdir)
    self._jsonl = open(workdir / 'metrics.jsonl', 'a', encoding='utf-8')
    self._tensorboard = tensorboardX.SummaryWriter(str(workdir / 'tensorboard'))

  def write(self, step: int, split: str, metrics: dict[str, float]):
    if not self._active:
      return
    record = {'step': int(step), 'split': split, **{k: float(v) for k, v in metrics.items()}}
    self._jsonl.write(json.dumps(record) + '\n')
    self._jsonl.flush()
    for name, value in metrics.items():
      self._tensorboard.add_scalar(f'{split}/{name}', float(value), int(step))

  def close(self):
    if self._active:
      self._jsonl.close()
      self._tensorboard.close()


def read_metrics(workdir: str | pathlib.Path, split: str | None = None) -> list[dict]:
  """The records of a workdir's metrics.jsonl, optionally of one split."""
  path = pathlib.Path(workdir) / 'metrics.jsonl'
  records = [json.loads(line) for line in path.read_text().splitlines() if line]
  return [r for r in records if split is None or r['split'] == split]
