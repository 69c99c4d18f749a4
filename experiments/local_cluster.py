"""Runs memgpt-train as N processes on this machine's CPU, joined by jax.distributed
over localhost: the multi-host code path (a data shard per process, collectives
between processes, checkpoints written by every process) without a cluster.

  python experiments/local_cluster.py --num_processes=2 --devices_per_process=2 -- \\
      --config=configs/tiny.py --workdir=runs/two_processes [--config.mesh.fsdp=2 ...]

Process 0 prints to this terminal, process i > 0 to <workdir>/logs/process_<i>.log.
The first process to fail stops the others; the exit status is its status.
"""

import argparse
import contextlib
import os
import pathlib
import subprocess
import sys
import time

import portpicker


def parse_args() -> tuple[argparse.Namespace, list[str]]:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--num_processes', type=int, default=2)
  parser.add_argument('--devices_per_process', type=int, default=1,
                      help='simulated CPU devices in each process')
  parser.add_argument('train_args', nargs=argparse.REMAINDER,
                      help='-- then the arguments of memgpt-train')
  args = parser.parse_args()
  train_args = args.train_args[1:] if args.train_args[:1] == ['--'] else args.train_args
  if not any(arg.startswith('--workdir=') for arg in train_args):
    parser.error('give memgpt-train a --workdir=DIR after --')
  return args, train_args


def main() -> int:
  args, train_args = parse_args()
  workdir = pathlib.Path(next(a for a in train_args if a.startswith('--workdir=')).split('=', 1)[1])
  (workdir / 'logs').mkdir(parents=True, exist_ok=True)
  # The caller's XLA flags stay; the device count is added to them.
  flags = (f"{os.environ.get('XLA_FLAGS', '')} "
           f'--xla_force_host_platform_device_count={args.devices_per_process}')
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS=flags.strip())
  coordinator = f'localhost:{portpicker.pick_unused_port()}'
  with contextlib.ExitStack() as logs:
    processes = []
    for index in range(args.num_processes):
      output = {}  # process 0 writes to this terminal
      if index:
        log = logs.enter_context(open(workdir / 'logs' / f'process_{index}.log', 'w'))
        output = {'stdout': log, 'stderr': subprocess.STDOUT}
      processes.append(subprocess.Popen(
          [sys.executable, '-m', 'memgpt_jax.cli.train', *train_args,
           f'--coordinator_address={coordinator}', f'--num_processes={args.num_processes}',
           f'--process_id={index}'], env=env, **output))
    while True:
      codes = [process.poll() for process in processes]
      failed = next((code for code in codes if code not in (None, 0)), None)
      if failed is not None or all(code == 0 for code in codes):
        break
      time.sleep(0.2)
    for process in processes:
      if process.poll() is None:
        process.terminate()
      process.wait()
  return failed or 0


if __name__ == '__main__':
  sys.exit(main())
