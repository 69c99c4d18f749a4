"""memgpt-train --config=configs/default.py --workdir=runs/default [--config.a.b=v ...]

Trains (or resumes, from the workdir's newest checkpoint that restores), evaluates,
then prints a sample from the trained model. On many hosts, run it once per host (or per GPU):
srun / mpirun launches are detected, TPU pod slices take --distributed=on, anything
else --coordinator_address=HOST:PORT --num_processes=N --process_id=I.
"""

# pylint: disable=wrong-import-position; SIGTERM is answered before JAX is imported
from memgpt_jax.cli import signals
signals.exit_on_sigterm('memgpt-train')

from absl import flags
import jax
from ml_collections import config_flags

from memgpt_jax import sampling
from memgpt_jax.cli.common import run_main
from memgpt_jax.data import records
from memgpt_jax.parallel import distributed
from memgpt_jax.training.trainer import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file (get_config()).',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Checkpoints, metrics and the config go here.')
_SAMPLE = flags.DEFINE_bool('sample', True, 'Print a sample from the model after training.')
_DISTRIBUTED = flags.DEFINE_enum(
    'distributed', 'auto', distributed.MODES,
    'Join jax.distributed (one process per host): auto = when a coordinator is given or '
    'srun / mpirun started several tasks; on = always (TPU pod slices); off = never.')
_COORDINATOR = flags.DEFINE_string('coordinator_address', None,
                                   'HOST:PORT of process 0, where all processes meet.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'How many processes in all.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process: 0 .. num_processes-1.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  del argv
  distributed.initialize(_DISTRIBUTED.value, _COORDINATOR.value, _NUM_PROCESSES.value,
                         _PROCESS_ID.value)
  config = _CONFIG.value
  metrics = train_and_evaluate(config, _WORKDIR.value)
  if jax.process_index() != 0:
    return
  print('last validation: ' + ' '.join(f'{k}={v:.4f}' for k, v in metrics.items()))
  if _SAMPLE.value and jax.process_count() > 1:
    print(f'(sample with: memgpt-sample --workdir={_WORKDIR.value} --prompt=...)')
  elif _SAMPLE.value:
    decoder, tokenizer, _ = sampling.load_decoder(_WORKDIR.value)
    print(f'--- sample (prompt {config.sample.prompt!r}) ---')
    sampling.sample(decoder, tokenizer, config.sample.prompt, config.sample.max_new_tokens,
                    seed=config.seed, temperature=config.sample.temperature,
                    top_k=config.sample.top_k, top_p=config.sample.top_p,
                    seq2seq=records.is_seq2seq(config.data))


def run():
  run_main('memgpt-train', main)


if __name__ == '__main__':
  run()
