"""User-facing errors: the command-line programs print these as one line, no traceback."""


class UserError(ValueError):
  """Bad input from the user (config, paths, workdir, prompt)."""


class ConfigError(UserError):
  """A config key or value that does not exist or does not fit."""
