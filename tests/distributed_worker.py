"""One process of a small training run on fixed global batches, alone or as one of
several joined by jax.distributed (for tests/test_distributed.py).

Trains from scratch to --steps (checkpointing at --save_at into --save_dir), and/or
restores the latest checkpoint of --resume_dir onto this run's mesh and trains on
to --steps. Process 0 writes the losses and final parameters to --out (.npz).
"""

import argparse

import jax
from jax.experimental import multihost_utils
import numpy as np

from memgpt_jax.parallel import distributed
from memgpt_jax.parallel.mesh import describe
from memgpt_jax.training.partitioner import make_partitioner
from memgpt_jax.training.checkpointing import Checkpointer
from multidevice import fixed_batch, host_rows, model_and_optimizer, parallel_config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser()
  parser.add_argument('--num_processes', type=int, default=1)
  parser.add_argument('--process_id', type=int, default=0)
  parser.add_argument('--port', type=int)
  parser.add_argument('--fsdp', type=int, default=1)
  parser.add_argument('--tensor', type=int, default=1)
  parser.add_argument('--steps', type=int, required=True)
  parser.add_argument('--fresh', action='store_true')
  parser.add_argument('--save_dir')
  parser.add_argument('--save_at', type=int)
  parser.add_argument('--resume_dir')
  parser.add_argument('--out', required=True)
  return parser.parse_args(argv)


def train(partitioner, state, until: int, config, checkpoint=None) -> tuple[list, object]:
  """Steps `state` (global layout) to step `until`; -> (losses, state)."""
  step = int(state.step)
  state = partitioner.from_global(state)
  losses = []
  while step < until:
    step += 1
    batch = host_rows(fixed_batch(step), partitioner.batch_sharding)
    state, metrics = partitioner.train_step(state, batch)
    losses.append(float(metrics['loss']))
    if checkpoint and step == checkpoint[1]:
      checkpointer = Checkpointer(checkpoint[0], async_save=False)
      checkpointer.save(step, partitioner.to_global(state), None, config,
                        {'process_count': jax.process_count(),
                         'mesh': dict(partitioner.mesh.shape)})
      checkpointer.close()
  return losses, partitioner.to_global(state)


def main(argv: list[str] | None = None):
  """The run `argv` (default: this process's command line) asks for; a one-process run
  may also be called from a test's own process."""
  args = parse_args(argv)
  if args.num_processes > 1:
    distributed.initialize('on', f'localhost:{args.port}', args.num_processes, args.process_id)
  config = parallel_config(fsdp=args.fsdp, tensor=args.tensor)
  partitioner = make_partitioner(config, *model_and_optimizer(config))
  results = {}
  if args.fresh:
    results['fresh'] = train(partitioner, partitioner.init_state(), args.steps, config,
                             (args.save_dir, args.save_at))
  if args.resume_dir:
    checkpointer = Checkpointer(args.resume_dir, async_save=False)
    restored = checkpointer.restore(partitioner.abstract_state)
    checkpointer.close()
    results['resumed'] = train(partitioner, restored, args.steps, config)
  arrays = {'mesh': np.array(describe(partitioner.mesh))}
  for name, (losses, state) in results.items():
    arrays[f'{name}_losses'] = np.array(losses)
    params = multihost_utils.process_allgather(state.params, tiled=True)
    for i, leaf in enumerate(jax.tree.leaves(params)):
      arrays[f'{name}_param_{i}'] = leaf
  if jax.process_index() == 0:
    np.savez(args.out, **arrays)


if __name__ == '__main__':
  main()
