"""Trains the tiny model on the same global batches under each layout of 8 simulated
CPU devices, for tests/test_parallel.py: prints one JSON line (losses, bytes per device,
example shardings, config errors) and saves each layout's final parameters (and, in the
streams layout, the state carried for every row) to the .npz file named by its one
argument. `train` also runs in the test's own process, on its one device: the reference
every layout must match."""

import json
import sys

import jax
import numpy as np

from memgpt_jax.errors import ConfigError
from memgpt_jax.training.partitioner import make_partitioner
from memgpt_jax.parallel.sharding import bytes_per_device
from multidevice import SOURCE_SEGMENTS, fixed_batch, model_and_optimizer, parallel_config

STEPS = 2
LAYOUTS = {  # name: (mesh axes, parallelism)
    'data=8': ({'data': 8}, 'jit'),
    'data=2 x fsdp=2 x tensor=2': ({'data': 2, 'fsdp': 2, 'tensor': 2}, 'jit'),
    'pmap': ({}, 'pmap'),
}
# data.layout='streams': the model state carried from step to step, row by row, and
# (for jit) split into 2 micro-batches: name -> (mesh axes, parallelism, micro-batches).
STREAMS_LAYOUTS = {
    'streams data=2 x fsdp=2 x tensor=2, 2 micro-batches': (
        {'data': 2, 'fsdp': 2, 'tensor': 2}, 'jit', 2),
    'streams pmap': ({}, 'pmap', 1),
}

# model.arch='encoder_decoder' (an encoder of one layer): name -> (mesh axes, parallelism).
ENCODER_DECODER_LAYOUTS = {
    'encoder_decoder data=2 x fsdp=2 x tensor=2': ({'data': 2, 'fsdp': 2, 'tensor': 2}, 'jit'),
    'encoder_decoder pmap': ({}, 'pmap'),
}


def partitioner_for(mesh: dict, parallelism: str = 'jit', batch_size: int | None = None,
                    streams: bool = False, grad_accum_steps: int = 1,
                    encoder_decoder: bool = False):
  config = parallel_config(**mesh)
  config.parallelism = parallelism
  config.train.batch_size = batch_size or config.train.batch_size
  config.train.grad_accum_steps = grad_accum_steps
  config.data.layout = 'streams' if streams else 'packed'
  if encoder_decoder:
    config.model.arch = 'encoder_decoder'
    config.model.encoder.update(num_layers=1, num_segments=SOURCE_SEGMENTS)
  return make_partitioner(config, *model_and_optimizer(config))


def most_bytes_on_a_device(tree) -> int:
  return max(bytes_per_device(tree).values())


def train(mesh: dict, parallelism: str, streams: bool = False, grad_accum_steps: int = 1,
          encoder_decoder: bool = False) -> tuple[dict, list[np.ndarray]]:
  """STEPS updates on all of this process's devices -> (report, final parameter leaves,
  then the carried state's)."""
  partitioner = partitioner_for(mesh, parallelism, streams=streams,
                                grad_accum_steps=grad_accum_steps,
                                encoder_decoder=encoder_decoder)
  initial = partitioner.init_state()
  start = jax.device_get(initial.params)
  state = partitioner.from_global(initial)
  losses = []
  for step in range(1, STEPS + 1):
    state, metrics = partitioner.train_step(state, fixed_batch(step, encoder_decoder))
    losses.append(float(metrics['loss']))
  state = partitioner.to_global(state)
  # The global layout and the step's convert both ways without loss.
  state = partitioner.to_global(partitioner.from_global(state))
  params = jax.tree.leaves(jax.device_get(state.params))
  query = partitioner.state_shardings.params['blocks_0']['attention']['query']['kernel']
  report = {
      'losses': losses,
      'param_bytes': most_bytes_on_a_device(state.params),
      'opt_state_bytes': most_bytes_on_a_device(state.opt_state),
      'query_spec': str(query.spec),
      'moved': max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(start), params)),
  }
  return report, params + jax.tree.leaves(jax.device_get(state.carry))


def config_error(mesh: dict, batch_size: int | None = None) -> str:
  try:
    partitioner_for(mesh, batch_size=batch_size)
  except ConfigError as error:
    return str(error)
  return ''


def main(params_file: str):
  reports, params = {}, {}
  for name, (mesh, parallelism) in LAYOUTS.items():
    reports[name], leaves = train(mesh, parallelism)
    params.update({f'{name}:{index:04d}': leaf for index, leaf in enumerate(leaves)})
  for name, (mesh, parallelism, grad_accum_steps) in STREAMS_LAYOUTS.items():
    reports[name], leaves = train(mesh, parallelism, True, grad_accum_steps)
    params.update({f'{name}:{index:04d}': leaf for index, leaf in enumerate(leaves)})
  for name, (mesh, parallelism) in ENCODER_DECODER_LAYOUTS.items():
    reports[name], leaves = train(mesh, parallelism, encoder_decoder=True)
    params.update({f'{name}:{index:04d}': leaf for index, leaf in enumerate(leaves)})
  np.savez(params_file, **params)
  fsdp8 = partitioner_for({'data': 1, 'fsdp': 8}).init_state()
  reports['fsdp=8'] = {'param_bytes': most_bytes_on_a_device(fsdp8.params),
                       'opt_state_bytes': most_bytes_on_a_device(fsdp8.opt_state)}
  errors = {'mesh': config_error({'data': 3}),
            'batch': config_error({'data': 2, 'fsdp': -1}, batch_size=4)}
  print(json.dumps({'layouts': reports, 'errors': errors}))


if __name__ == '__main__':
  main(sys.argv[1])
