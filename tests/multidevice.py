"""Shared by the multi-device tests and the scripts they run in subprocesses (XLA_FLAGS
must be set before jax starts, so simulated devices need a process of their own)."""

import json
import os
import subprocess
import sys

import ml_collections
import numpy as np

from conftest import ROOT, VOCAB, load_config
from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.transformer import MemGPT
from memgpt_jax.training.optimizer import make_optimizer

BATCH = 8


def parallel_config(**mesh: int) -> ml_collections.ConfigDict:
  """configs/tiny.py with 4 heads (so tensor=4 splits them), a batch of 8 and no
  warmup (so the first update already moves the parameters)."""
  config = load_config('tiny')
  config.model.num_heads = 4
  config.train.batch_size = BATCH
  config.train.warmup_steps = 0
  for axis, size in mesh.items():
    config.mesh[axis] = size
  return config


def model_and_optimizer(config: ml_collections.ConfigDict):
  return MemGPT(ModelConfig.from_config(config.model, VOCAB)), make_optimizer(config.train)


# An encoder-decoder's sources in the layouts' batches: 2 segments (padded at the end).
SOURCE_SEGMENTS = 2


def fixed_batch(step: int, encoder_decoder: bool = False) -> dict[str, np.ndarray]:
  """The global batch of `step`, the same in every process. Rows end in padding of
  different lengths, so devices hold different numbers of real tokens; with
  `encoder_decoder` their sources too."""
  model = load_config('tiny').model
  seq_len = model.segment_len * model.num_segments
  rng = np.random.default_rng(step)
  inputs = rng.integers(0, VOCAB, (BATCH, seq_len), dtype=np.int32)
  lengths = seq_len - 5 * (np.arange(BATCH) % 4)
  mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype(np.float32)
  batch = {'inputs': inputs, 'targets': np.roll(inputs, -1, axis=1), 'mask': mask}
  if encoder_decoder:
    source_len = SOURCE_SEGMENTS * model.segment_len
    real = np.arange(source_len)[None, :] < source_len - 3 * (np.arange(BATCH)[:, None] % 3)
    batch |= {'encoder_inputs': rng.integers(0, VOCAB, (BATCH, source_len), dtype=np.int32),
              'encoder_doc_ids': real.astype(np.int32),
              'doc_ids': np.ones((BATCH, seq_len), np.int32)}
  return batch


def host_rows(batch: dict[str, np.ndarray], sharding) -> dict[str, np.ndarray]:
  """The rows of a global batch that this process's devices hold, in order."""
  shape = batch['inputs'].shape
  blocks = sorted({index[0].indices(shape[0])[:2]
                   for index in sharding.addressable_devices_indices_map(shape).values()})
  return {k: np.concatenate([v[start:stop] for start, stop in blocks]) for k, v in batch.items()}


def run_scripts(*runs: tuple[str, ...], devices: int = 1,
                timeout: float = 400) -> list[tuple[str, str]]:
  """Runs tests/<script> <args> for each run at once, on `devices` simulated CPU
  devices each; returns their (stdout, stderr). One failure stops the others."""
  flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS=flags.strip())
  processes = [subprocess.Popen([sys.executable, str(ROOT / 'tests' / script), *args],
                                env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
               for script, *args in runs]
  outputs = []
  try:
    for process in processes:
      stdout, stderr = process.communicate(timeout=timeout)
      assert process.returncode == 0, stderr[-4000:]
      outputs.append((stdout, stderr))
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
        process.communicate()
  return outputs


def last_json_line(stdout: str) -> dict:
  return json.loads(stdout.strip().splitlines()[-1])
