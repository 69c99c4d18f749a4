"""Trains the tiny model on the same global batches under each layout of 8 simulated
CPU devices and prints one JSON line for tests/test_parallel.py: losses, the largest
parameter difference from one device, bytes per device, example shardings."""

import json

import jax
import numpy as np

from memgpt_jax.errors import ConfigError
from memgpt_jax.training.partitioner import JitPartitioner, make_partitioner
from memgpt_jax.parallel.sharding import bytes_per_device
from multidevice import fixed_batch, model_and_optimizer, parallel_config

STEPS = 2
LAYOUTS = {  # name: (mesh axes, parallelism)
    'one device': ({}, 'jit'),
    'data=8': ({'data': 8}, 'jit'),
    'data=2 x fsdp=2 x tensor=2': ({'data': 2, 'fsdp': 2, 'tensor': 2}, 'jit'),
    'pmap': ({}, 'pmap'),
}


def partitioner_for(mesh: dict, parallelism: str = 'jit', batch_size: int | None = None,
                    devices: list[jax.Device] | None = None) -> JitPartitioner:
  config = parallel_config(**mesh)
  config.parallelism = parallelism
  config.train.batch_size = batch_size or config.train.batch_size
  model, optimizer = model_and_optimizer(config)
  if devices:
    return JitPartitioner(config, model, optimizer, devices)
  return make_partitioner(config, model, optimizer)


def most_bytes_on_a_device(tree) -> int:
  return max(bytes_per_device(tree).values())


def train(name: str, mesh: dict, parallelism: str) -> tuple[dict, dict]:
  partitioner = partitioner_for(
      mesh, parallelism, devices=jax.devices()[:1] if name == 'one device' else None)
  initial = partitioner.init_state()
  start = jax.device_get(initial.params)
  state = partitioner.from_global(initial)
  losses = []
  for step in range(1, STEPS + 1):
    state, metrics = partitioner.train_step(state, fixed_batch(step))
    losses.append(float(metrics['loss']))
  state = partitioner.to_global(state)
  query = partitioner.state_shardings.params['blocks_0']['attention']['query']['kernel']
  report = {
      'losses': losses,
      'param_bytes': most_bytes_on_a_device(state.params),
      'opt_state_bytes': most_bytes_on_a_device(state.opt_state),
      'query_spec': str(query.spec),
      'moved': max(float(np.abs(a - b).max()) for a, b in
                   zip(jax.tree.leaves(start), jax.tree.leaves(jax.device_get(state.params)))),
  }
  return report, jax.device_get(state.params)


def config_error(mesh: dict, batch_size: int | None = None) -> str:
  try:
    partitioner_for(mesh, batch_size=batch_size)
  except ConfigError as error:
    return str(error)
  return ''


def main():
  reports, params = {}, {}
  for name, (mesh, parallelism) in LAYOUTS.items():
    reports[name], params[name] = train(name, mesh, parallelism)
  for name in reports:
    reports[name]['param_diff'] = max(
        float(np.abs(a - b).max())
        for a, b in zip(jax.tree.leaves(params[name]), jax.tree.leaves(params['one device'])))
  fsdp8 = partitioner_for({'data': 1, 'fsdp': 8}).init_state()
  reports['fsdp=8'] = {'param_bytes': most_bytes_on_a_device(fsdp8.params),
                       'opt_state_bytes': most_bytes_on_a_device(fsdp8.opt_state)}
  errors = {'mesh': config_error({'data': 3}),
            'batch': config_error({'data': 2, 'fsdp': -1}, batch_size=4)}
  print(json.dumps({'layouts': reports, 'errors': errors}))


if __name__ == '__main__':
  main()
