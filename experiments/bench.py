"""Training speed of MemGPT against the plain GPT of the same width, depth and batch.

  python experiments/bench.py [--config=configs/default.py] [--rounds=7] [--steps=3]
                              [--config.train.batch_size=16 ...]
                              [--out=experiments/results] [--name=bench_cpu]

Every model is timed in ONE run on the same devices, with the real train step (jit
over the mesh of config.mesh, or pmap: memgpt_jax.parallel) on random tokens, so the
input pipeline is not in the figure: the plain GPT, MemGPT with the slot memory, and
MemGPT with the delta memory written by each of its forms (scan, chunked). The models
take turns: --rounds rounds of --steps steps each, and a model's step time is its
median round, so a machine that speeds up or slows down during the run moves every
model alike. Prints and writes (<out>/<name>.json, .md) params, step time, tokens/s,
the ratio to the plain GPT, and on GPU/TPU the MFU from the model FLOP count of
memgpt_jax/flops.py (memory and pointer work included) and its per-device peak table.
"""

import pathlib
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags
import numpy as np

from memgpt_jax import config_lib
from memgpt_jax import flops
from memgpt_jax.data.tokenizer import declared_vocab_size
from memgpt_jax.model.transformer import MemGPT
from memgpt_jax.training.partitioner import make_partitioner
from memgpt_jax.parallel.sharding import bytes_per_device
from memgpt_jax.provenance import provenance, write_results
from memgpt_jax.training.optimizer import make_optimizer

ROOT = pathlib.Path(__file__).resolve().parents[1]
_CONFIG = config_flags.DEFINE_config_file('config', str(ROOT / 'configs' / 'default.py'),
                                          'MemGPT config.')
_ROUNDS = flags.DEFINE_integer('rounds', 7, 'Timed rounds; each model runs once per round.')
_STEPS = flags.DEFINE_integer('steps', 3, 'Steps per model and round.')
_WARMUP = flags.DEFINE_integer('warmup', 2, 'Untimed steps first (compilation included).')
_OUT = flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
_NAME = flags.DEFINE_string('name', None, 'Results file name (default bench_<platform>).')

# MemGPT as configured, once per memory kind and write form.
MEMORY_VARIANTS = {
    'memgpt_slots': {'model.memory.kind': 'slots'},
    'memgpt_delta_scan': {'model.memory.kind': 'delta', 'model.memory.delta.write_form': 'scan'},
    'memgpt_delta_chunked': {'model.memory.kind': 'delta',
                             'model.memory.delta.write_form': 'chunked'},
}


class Timed:
  """One model's train step, compiled and warmed up, timed a round at a time."""

  def __init__(self, config):
    self.cfg = config_lib.validate(config, declared_vocab_size(config.data),
                                   jax.process_count())
    self.config = config
    self.partitioner = make_partitioner(config, MemGPT(self.cfg), make_optimizer(config.train))
    self.state = self.partitioner.from_global(self.partitioner.init_state())
    shape = (config.train.batch_size // jax.process_count(), self.cfg.seq_len)  # this host's
    tokens = np.random.default_rng(0).integers(0, 256, shape, dtype=np.int32)
    self.batch = {'inputs': tokens, 'targets': tokens, 'mask': np.ones(shape, np.float32)}
    start = time.perf_counter()
    self.run(_WARMUP.value)
    self.warmup_seconds = time.perf_counter() - start  # compilation included
    self.rounds = []

  def run(self, steps: int):
    for _ in range(steps):
      self.state, metrics = self.partitioner.train_step(self.state, self.batch)
    jax.block_until_ready((self.state, metrics))

  def time_round(self):
    start = time.perf_counter()
    self.run(_STEPS.value)
    self.rounds.append((time.perf_counter() - start) / _STEPS.value)

  def summary(self) -> dict:
    seconds = float(np.median(self.rounds))
    tokens_per_second = self.config.train.batch_size * self.cfg.seq_len / seconds
    achieved = flops.train_flops_per_token(self.cfg) * tokens_per_second
    peak = flops.peak_flops(jax.devices()[0].device_kind, self.cfg.dtype)
    return {
        'params': sum(x.size for x in jax.tree.leaves(self.partitioner.abstract_state.params)),
        # Parameters and optimizer state on the fullest device.
        'state_bytes_per_device': max(
            bytes_per_device(self.partitioner.to_global(self.state)).values()),
        'step_ms': 1e3 * seconds,
        'step_ms_rounds': [1e3 * s for s in self.rounds],
        'warmup_seconds': self.warmup_seconds,
        'tokens_per_second': tokens_per_second,
        'model_tflops_per_second': achieved / 1e12,
        'mfu': achieved / (peak * len(jax.devices())) if peak else None,
    }


def markdown(results: dict) -> str:
  lines = [f'# Training speed: {results["name"]}', '',
           f'`{results["command"]}` at commit {results["commit"]} on {results["device"]}, '
           f'{results["dtype"]}, batch {results["batch_size"]} x {results["seq_len"]} tokens; '
           f'each model\'s median of {results["rounds"]} rounds of {results["steps"]} steps, '
           'the models taking turns.', '',
           f'Warm-up: the first {results["warmup"]} steps, compilation included.', '',
           '| model | params | step ms | tokens/s | / plain GPT | / slot memory | MFU | warm-up s |',
           '|---|---|---|---|---|---|---|---|']
  models = results['models']
  for name, r in models.items():
    mfu = f'{100 * r["mfu"]:.1f}%' if r['mfu'] is not None else 'n/a'
    over_slots = r['tokens_per_second'] / models['memgpt_slots']['tokens_per_second']
    lines.append(f'| {name} | {r["params"]:,} | {r["step_ms"]:.0f} | '
                 f'{r["tokens_per_second"]:,.0f} | {r["over_plain_gpt"]:.3f} | '
                 f'{over_slots:.3f} | {mfu} | {r["warmup_seconds"]:.1f} |')
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  config = _CONFIG.value
  device = jax.devices()[0]
  name = _NAME.value or f'bench_{device.platform}'
  results = {'name': name, **provenance(), 'device': f'{len(jax.devices())} x {device.device_kind}',
             'dtype': config.model.dtype, 'batch_size': config.train.batch_size,
             'seq_len': config.model.segment_len * config.model.num_segments,
             'rounds': _ROUNDS.value, 'steps': _STEPS.value, 'warmup': _WARMUP.value}
  configs = {'plain_gpt': config_lib.plain_gpt(config)}
  for variant, overrides in MEMORY_VARIANTS.items():
    configs[variant] = config.copy_and_resolve_references()
    for key, value in overrides.items():
      config_lib.set_dotted(configs[variant], key, value)
  models = {variant: Timed(c) for variant, c in configs.items()}
  for _ in range(_ROUNDS.value):
    for model in models.values():
      model.time_round()
  results['models'] = {variant: model.summary() for variant, model in models.items()}
  plain = results['models']['plain_gpt']['tokens_per_second']
  for r in results['models'].values():
    r['over_plain_gpt'] = r['tokens_per_second'] / plain
  table = markdown(results)
  print(table)
  write_results(_OUT.value, name, results, table)


if __name__ == '__main__':
  app.run(main)
