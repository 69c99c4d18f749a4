"""What both programs share: one-line errors instead of tracebacks, config flag checks."""

import sys
from collections.abc import Callable

from absl import app
from absl import logging
from absl import flags

from memgpt_jax import config_lib
from memgpt_jax.errors import UserError


def fail(program: str, message: str):
  print(f'{program}: error: {message}', file=sys.stderr)
  sys.exit(2)


def _unknown_override(argv: list[str]) -> str | None:
  """The first --config.a.b=v whose key the config file does not have."""
  path = next((a.split('=', 1)[1] for a in argv if a.startswith('--config=')), None)
  if path is None:
    return None
  config = config_lib.load_config(path)
  for arg in argv:
    if not arg.startswith('--config.'):
      continue
    key = arg[len('--config.'):].split('=', 1)[0]
    if not config_lib.has_key(config, key):
      return key
  return None


def _drop_tfds_config_notice(record) -> bool:
  """TFDS warns on every load of a builder config defined outside its catalog: noise."""
  return not record.getMessage().startswith('Using custom data configuration')


def run_main(program: str, main: Callable[[list[str]], None]):
  """app.run with flag and user errors reported on one line (exit status 2)."""

  def parse(argv):
    try:
      return flags.FLAGS(argv)
    except (KeyError, AttributeError) as error:
      try:
        unknown = _unknown_override(argv)
      except UserError as user_error:
        fail(program, str(user_error))
      fail(program, f'unknown config key {unknown!r}' if unknown else str(error))
    except (flags.Error, OSError) as error:
      fail(program, str(error).replace('\n', ' ').strip())

  def guarded(argv):
    logging.set_verbosity(logging.WARNING)  # Orbax and TFDS log every step at INFO
    logging.get_absl_logger().addFilter(_drop_tfds_config_notice)
    try:
      main(argv)
    except UserError as error:
      fail(program, str(error))
    except KeyboardInterrupt:
      fail(program, 'interrupted')

  app.run(guarded, flags_parser=parse)
