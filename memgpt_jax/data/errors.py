"""The data pipeline's user-facing error."""

from memgpt_jax.errors import UserError


class DataError(UserError):
  """Bad data settings or inputs (paths, splits, source); the message is one line."""
