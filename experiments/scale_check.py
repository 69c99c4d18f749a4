"""Per-device memory, communication and step time of each parallel layout on 8
simulated CPU devices.

  python experiments/scale_check.py [--config=configs/default.py] [--rounds=3]
                                    [--steps=3] [--warmup=2] [--out=experiments/results]
                                    [--name=scale_check]

The same model and global batch under data=8, fsdp=8, data=2 x fsdp=4,
data=2 x tensor=4, data=2 x fsdp=2 x tensor=2 and pmap, timed as bench.py times a
model (the real train step on random tokens, the median of --rounds rounds of --steps
steps). Memory: bytes of parameters + optimizer state held by the fullest device.
Communication: the bytes of every collective's result on one device, summed over the
compiled step (jit layouts; from its optimized HLO, so after this backend's
collective passes: on a CPU the weight gradient of each of the K segments is
all-reduced apart, where XLA's GPU pipeline reassociates the sum first and turns
all-reduce + slice into reduce-scatter). Simulated
devices share this machine's cores, so step times show the cost of each layout's
collectives and bookkeeping, not a real speed-up. Writes <out>/<name>.json, .md.
"""

import os

# Eight simulated devices unless the caller chose otherwise; jax reads this at start-up.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

import bench  # its flags (--config, --rounds, --steps, --warmup, --out) and Timed
import step_profile
from memgpt_jax import host_memory
from memgpt_jax.provenance import devices, provenance, write_results

LAYOUTS = {  # name: (mesh axes, parallelism)
    'data=8': ({'data': 8}, 'jit'),
    'fsdp=8': ({'data': 1, 'fsdp': 8}, 'jit'),
    'data=2 x fsdp=4': ({'data': 2, 'fsdp': 4}, 'jit'),
    'data=2 x tensor=4': ({'data': 2, 'tensor': 4}, 'jit'),
    'data=2 x fsdp=2 x tensor=2': ({'data': 2, 'fsdp': 2, 'tensor': 2}, 'jit'),
    'pmap (data=8)': ({'data': 8}, 'pmap'),
}


def markdown(results: dict) -> str:
  base = results['layouts']['data=8']
  lines = [f'# Parallel layouts: {results["name"]}', '',
           f'`{results["command"]}` at commit {results["commit"]} on {results["device"]} '
           f'(simulated: they share the machine\'s cores), params {base["params"]:,}, '
           f'batch {results["batch_size"]}; each layout\'s median of {results["rounds"]} '
           f'rounds of {results["steps"]} steps.', '',
           '| layout | state MB / device | / data=8 | collectives MB / device / step | '
           'step ms | tokens/s |', '|---|---|---|---|---|---|']
  for name, r in results['layouts'].items():
    sent = r.get('collective_bytes')
    sent = '-' if sent is None else f'{sum(sent.values()) / 2**20:.1f}'
    lines.append(f'| {name} | {r["state_bytes_per_device"] / 2**20:.2f} | '
                 f'{r["state_bytes_per_device"] / base["state_bytes_per_device"]:.3f} | '
                 f'{sent} | {r["step_ms"]:.1f} | {r["tokens_per_second"]:,.0f} |')
  lines += ['', 'pmap: one all-reduce of the gradients over the devices (its program is '
            'not inspected here).']
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  options = flags.FLAGS
  results = {'name': options.name or 'scale_check', **provenance(),
             'device': devices(),
             'batch_size': bench._CONFIG.value.train.batch_size,  # pylint: disable=protected-access
             'rounds': options.rounds, 'steps': options.steps, 'layouts': {}}
  for name, (mesh, parallelism) in LAYOUTS.items():
    config = bench._CONFIG.value.copy_and_resolve_references()  # pylint: disable=protected-access
    config.mesh.update(mesh)
    config.parallelism = parallelism
    config.train.grad_accum_steps = 1  # every layout in one batch: a row per device on 8
    timed = bench.Timed(config)
    for _ in range(options.rounds):
      timed.time_round()
    results['layouts'][name] = timed.summary()
    if parallelism == 'jit':  # pmap's step cannot be traced on abstract inputs
      results['layouts'][name]['collective_bytes'] = step_profile.collective_bytes(
          timed.program.as_text())
  table = markdown(results)
  print(table)
  write_results(options.out, results['name'], results, table)


if __name__ == '__main__':
  host_memory.run(app.run, main)
