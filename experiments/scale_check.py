"""Per-device memory and step time of each parallel layout on 8 simulated CPU devices.

  python experiments/scale_check.py [--config=configs/default.py] [--steps=5]
                                    [--warmup=2] [--out=scale.json]

The same model and global batch under data=8, fsdp=8, data=2 x fsdp=4,
data=2 x tensor=4 and pmap, timed with bench.py's time_training (the real train
step, random tokens). Memory: bytes of parameters + optimizer state held by the
fullest device. Simulated devices share this machine's cores, so step times show
the cost of each layout's collectives and bookkeeping, not a real speed-up.
"""

import json
import os

# Eight simulated devices unless the caller chose otherwise; jax reads this at start-up.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

from absl import app  # pylint: disable=g-import-not-at-top
import jax

import bench  # its flags (--config, --steps, --warmup, --out) and time_training

LAYOUTS = {  # name: (mesh axes, parallelism)
    'data=8': ({'data': 8}, 'jit'),
    'fsdp=8': ({'data': 1, 'fsdp': 8}, 'jit'),
    'data=2 x fsdp=4': ({'data': 2, 'fsdp': 4}, 'jit'),
    'data=2 x tensor=4': ({'data': 2, 'tensor': 4}, 'jit'),
    'pmap (data=8)': ({'data': 8}, 'pmap'),
}


def main(argv):
  del argv
  results = {'device': f'{jax.device_count()} x {jax.devices()[0].device_kind}',
             'layouts': {}}
  for name, (mesh, parallelism) in LAYOUTS.items():
    config = bench._CONFIG.value.copy_and_resolve_references()  # pylint: disable=protected-access
    config.mesh.update(mesh)
    config.parallelism = parallelism
    results['layouts'][name] = bench.time_training(config)
  base = results['layouts']['data=8']
  print(f"{results['device']}, params {base['params']:,}, "
        f"batch {bench._CONFIG.value.train.batch_size}")  # pylint: disable=protected-access
  print(f"{'layout':<18} {'state MB/device':>15} {'vs data=8':>9} {'step ms':>9} {'tokens/s':>9}")
  for name, r in results['layouts'].items():
    print(f"{name:<18} {r['state_bytes_per_device'] / 2**20:>15.2f} "
          f"{r['state_bytes_per_device'] / base['state_bytes_per_device']:>9.3f} "
          f"{r['step_ms']:>9.1f} {r['tokens_per_second']:>9.0f}")
  if bench._OUT.value:  # pylint: disable=protected-access
    with open(bench._OUT.value, 'w', encoding='utf-8') as f:  # pylint: disable=protected-access
      json.dump(results, f, indent=2)


if __name__ == '__main__':
  app.run(main)
