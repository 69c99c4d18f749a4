"""What both programs share: one-line errors instead of tracebacks, config flag checks,
the compilation cache."""

import os
import sys
from collections.abc import Callable

from absl import app
from absl import logging
from absl import flags
import jax

from memgpt_jax import config_lib
from memgpt_jax import host_memory
from memgpt_jax.cli import signals
from memgpt_jax.errors import Diverged, Preempted, SaveFailed, UserError


_COMPILATION_CACHE = flags.DEFINE_string(
    'compilation_cache', '~/.cache/memgpt_jax/compilation',
    'Where compiled programs are kept between runs, so that a resume, a rerun or sampling '
    'does not compile them again; empty: nowhere. JAX_COMPILATION_CACHE_DIR, when set, '
    'wins.')

def define_sampling_flags(tokens_help: str) -> dict[str, flags.FlagHolder]:
  """The sampling flags of memgpt-sample and memgpt-chat, {name: flag}; their defaults
  are configs/default.py's sample.* (what memgpt-train samples with)."""
  sample = config_lib.default_config().sample
  return {
      'max_new_tokens': flags.DEFINE_integer('max_new_tokens', sample.max_new_tokens,
                                             tokens_help),
      'temperature': flags.DEFINE_float('temperature', sample.temperature, '0 is greedy.'),
      'top_k': flags.DEFINE_integer('top_k', sample.top_k,
                                    'Keep the k most likely tokens (0: all).'),
      'top_p': flags.DEFINE_float('top_p', sample.top_p,
                                  'Nucleus: keep the top tokens holding this mass.'),
      'seed': flags.DEFINE_integer('seed', 0, 'Sampling seed.'),
  }


def flag_values(holders: dict[str, flags.FlagHolder]) -> dict:
  return {name: holder.value for name, holder in holders.items()}


# 0 finished, 2 bad input (UserError), 3 preempted (Preempted), 4 diverged (Diverged),
# 5 a checkpoint could not be written (SaveFailed),
# 130 interrupted by a second Ctrl-C or before training started (the shell's 128 + SIGINT).
EXIT_INTERRUPTED = 130


def fail(program: str, message: str, label: str = 'error',
         status: int = UserError.exit_status):
  print(f'{program}: {label}: {message}', file=sys.stderr)
  sys.exit(status)


def config_problem(argv: list[str]) -> str | None:
  """What is wrong with --config=FILE in argv, in words: the file, its get_config(), or
  the first --config.a.b=v whose key it lacks. The flags parser reports these as
  tracebacks, or (a missing file) not until the config is first read."""
  path = next((a.split('=', 1)[1] for a in argv if a.startswith('--config=')), None)
  if path is None:
    return None
  try:
    config = config_lib.load_config(path)
  except UserError as error:
    return str(error)
  keys = (a[len('--config.'):].split('=', 1)[0] for a in argv if a.startswith('--config.'))
  unknown = next((key for key in keys if not config_lib.has_key(config, key)), None)
  return None if unknown is None else f'unknown config key {unknown!r}'


def _drop_tfds_config_notice(record) -> bool:
  """TFDS warns on every load of a builder config defined outside its catalog: noise."""
  return not record.getMessage().startswith('Using custom data configuration')


def run_main(program: str, main: Callable[[list[str]], None]):
  """app.run with flag and user errors reported on one line (exit status 2)."""
  signals.exit_if_stopped()

  def parse(argv):
    problem = config_problem(argv)
    if problem:
      fail(program, problem)
    try:
      return flags.FLAGS(argv)
    except (flags.Error, OSError) as error:
      fail(program, str(error).replace('\n', ' ').strip())

  def guarded(argv):
    signals.exit_if_stopped()
    logging.set_verbosity(logging.WARNING)  # Orbax and TFDS log every step at INFO
    logging.get_absl_logger().addFilter(_drop_tfds_config_notice)
    if _COMPILATION_CACHE.value and 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
      jax.config.update('jax_compilation_cache_dir',
                        os.path.expanduser(_COMPILATION_CACHE.value))
    try:
      main(argv)
    except (UserError, Preempted, Diverged, SaveFailed) as error:
      label = {Preempted: 'preempted', Diverged: 'diverged',
               SaveFailed: 'save failed'}.get(type(error), 'error')
      fail(program, str(error), label, error.exit_status)
    except KeyboardInterrupt:
      fail(program, 'interrupted before anything could be saved', 'interrupted',
           EXIT_INTERRUPTED)

  host_memory.run(app.run, guarded, flags_parser=parse)
