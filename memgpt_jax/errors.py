"""Errors the command-line programs report as one line, no traceback, each with its
own exit status (docs/reliability.md)."""


class UserError(ValueError):
  """Bad input from the user (config, paths, workdir, prompt)."""
  exit_status = 2


class ConfigError(UserError):
  """A config key or value that does not exist or does not fit."""


class Preempted(Exception):
  """SIGTERM or Ctrl-C: the run saved a checkpoint at its current step; rerun to resume."""
  exit_status = 3


class Diverged(Exception):
  """The loss or gradient norm stopped being finite; no checkpoint holds what it made."""
  exit_status = 4


class SaveFailed(Exception):
  """A checkpoint could not be written (the disk full, an I/O error): its partial
  folder was removed and the checkpoints before it are intact; make room, rerun to resume."""
  exit_status = 5
