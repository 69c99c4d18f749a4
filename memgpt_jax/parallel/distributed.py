"""Joining jax.distributed, JAX's multi-controller runtime: every host (or GPU) runs
one process of the same program; together they see all devices as one mesh."""

import os

import jax

from memgpt_jax.errors import UserError

MODES = ('auto', 'on', 'off')


def launched_as_one_of_many() -> bool:
  """True when srun or mpirun started several copies of this program: the cluster
  launches that jax.distributed.initialize() configures by itself."""
  slurm_step = 'SLURM_STEP_NODELIST' in os.environ  # inside srun, not a batch script
  slurm_tasks = int(os.environ.get('SLURM_NTASKS', '1')) if slurm_step else 1
  open_mpi_tasks = int(os.environ.get('OMPI_COMM_WORLD_SIZE', '1'))
  return max(slurm_tasks, open_mpi_tasks) > 1


def initialize(mode: str = 'auto', coordinator_address: str | None = None,
               num_processes: int | None = None, process_id: int | None = None) -> bool:
  """Joins the runtime before any other JAX call; returns whether it did.

  mode 'auto' joins when a coordinator is given or a multi-task srun / mpirun
  launch is detected; 'on' always joins (on TPU pods, SLURM, Open MPI and
  Kubernetes jax finds the coordinator itself); 'off' never does.
  """
  explicit = any(value is not None for value in (coordinator_address, num_processes,
                                                  process_id))
  if mode not in MODES:
    raise UserError(f'--distributed={mode} is not one of {", ".join(MODES)}')
  if mode == 'off':
    if explicit:
      raise UserError('--distributed=off contradicts --coordinator_address, '
                      '--num_processes and --process_id')
    return False
  if mode == 'auto' and not explicit and not launched_as_one_of_many():
    return False
  # Processes without accelerators exchange gradients over TCP (gloo).
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  try:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  except ValueError as error:
    raise UserError(f'jax.distributed.initialize: {error} No cluster was detected: give '
                    '--coordinator_address=HOST:PORT --num_processes=N --process_id=I') from None
  return True
