"""Training speed of MemGPT against the plain GPT of the same width, depth and batch.

  python experiments/bench.py [--config=configs/default.py] [--steps=20]
                              [--config.train.batch_size=16 ...] [--out=results.json]

Every model is timed in ONE run on the same devices, with the real train step (jit
over the mesh of config.mesh, or pmap: memgpt_jax.parallel) on random tokens, so the
input pipeline is not in the figure: the plain GPT, MemGPT with the slot memory, and
MemGPT with the delta memory written by each of its forms (scan, chunked). Prints
tokens/s, step time, the ratios to the plain GPT, and on GPU/TPU the MFU from the model
FLOP count of memgpt_jax/flops.py (memory and pointer work included) and the
per-device peak table there.
"""

import json
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags
import numpy as np

from memgpt_jax import config_lib
from memgpt_jax import flops
from memgpt_jax.data.tokenizer import make_tokenizer
from memgpt_jax.model.transformer import MemGPT
from memgpt_jax.parallel.partitioner import make_partitioner
from memgpt_jax.parallel.sharding import bytes_per_device
from memgpt_jax.training.optimizer import make_optimizer

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/default.py', 'MemGPT config.')
_STEPS = flags.DEFINE_integer('steps', 20, 'Timed steps per model.')
_WARMUP = flags.DEFINE_integer('warmup', 3, 'Untimed steps first (compilation included).')
_OUT = flags.DEFINE_string('out', None, 'Also write the results to this JSON file.')

# MemGPT as configured, once per memory kind and write form.
MEMORY_VARIANTS = {
    'memgpt_slots': {'model.memory.kind': 'slots'},
    'memgpt_delta_scan': {'model.memory.kind': 'delta', 'model.memory.delta.write_form': 'scan'},
    'memgpt_delta_chunked': {'model.memory.kind': 'delta',
                             'model.memory.delta.write_form': 'chunked'},
}


def time_training(config) -> dict:
  cfg = config_lib.validate(config, make_tokenizer(config.data).vocab_size,
                            jax.process_count())
  model = MemGPT(cfg)
  partitioner = make_partitioner(config, model, make_optimizer(config.train))
  state = partitioner.from_global(partitioner.init_state())
  shape = (config.train.batch_size // jax.process_count(), cfg.seq_len)  # this host's rows
  tokens = np.random.default_rng(0).integers(0, 256, shape, dtype=np.int32)
  batch = {'inputs': tokens, 'targets': tokens, 'mask': np.ones(shape, np.float32)}
  for _ in range(_WARMUP.value):
    state, metrics = partitioner.train_step(state, batch)
  jax.block_until_ready((state, metrics))
  start = time.perf_counter()
  for _ in range(_STEPS.value):
    state, metrics = partitioner.train_step(state, batch)
  jax.block_until_ready((state, metrics))
  seconds = (time.perf_counter() - start) / _STEPS.value
  tokens_per_second = config.train.batch_size * cfg.seq_len / seconds
  achieved = flops.train_flops_per_token(cfg) * tokens_per_second
  device = jax.devices()[0]
  peak = flops.peak_flops(device.device_kind, cfg.dtype)
  return {
      'params': sum(x.size for x in jax.tree.leaves(partitioner.abstract_state.params)),
      # Parameters and optimizer state on the fullest device.
      'state_bytes_per_device': max(bytes_per_device(partitioner.to_global(state)).values()),
      'step_ms': 1e3 * seconds,
      'tokens_per_second': tokens_per_second,
      'model_tflops_per_second': achieved / 1e12,
      'mfu': achieved / (peak * len(jax.devices())) if peak else None,
  }


def main(argv):
  del argv
  config = _CONFIG.value
  device = jax.devices()[0]
  results = {'device': f'{len(jax.devices())} x {device.device_kind}',
             'dtype': config.model.dtype, 'batch_size': config.train.batch_size,
             'seq_len': config.model.segment_len * config.model.num_segments,
             'steps': _STEPS.value}
  models = {'plain_gpt': config_lib.plain_gpt(config)}
  for name, overrides in MEMORY_VARIANTS.items():
    variant = config.copy_and_resolve_references()
    for key, value in overrides.items():
      config_lib.set_dotted(variant, key, value)
    models[name] = variant
  results['models'] = {name: time_training(variant) for name, variant in models.items()}
  plain = results['models']['plain_gpt']['tokens_per_second']
  for r in results['models'].values():
    r['over_plain_gpt'] = r['tokens_per_second'] / plain
  print(f"device: {results['device']}  dtype: {results['dtype']}  "
        f"batch: {results['batch_size']} x {results['seq_len']} tokens  steps: {_STEPS.value}")
  print(f"{'model':<22} {'params':>10} {'step ms':>9} {'tokens/s':>10} {'/ plain':>8} "
        f"{'TFLOP/s':>8} {'MFU':>6}")
  for name, r in results['models'].items():
    mfu = f"{100 * r['mfu']:.1f}%" if r['mfu'] is not None else 'n/a'
    print(f"{name:<22} {r['params']:>10,} {r['step_ms']:>9.1f} {r['tokens_per_second']:>10.0f} "
          f"{r['over_plain_gpt']:>8.3f} {r['model_tflops_per_second']:>8.3f} {mfu:>6}")
  if _OUT.value:
    with open(_OUT.value, 'w', encoding='utf-8') as f:
      json.dump(results, f, indent=2)


if __name__ == '__main__':
  app.run(main)
