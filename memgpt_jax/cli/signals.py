"""SIGTERM answered from a program's first lines: a scheduler's stop while JAX imports
(seconds) or data is prepared gets the documented status and one line, not the
shell's 143. The training loop answers it itself while steps run (checkpoint, then 3).
Imports nothing heavy: it runs before JAX is imported."""

import signal
import sys

from memgpt_jax.errors import Preempted

_received = []  # the SIGTERMs this process has had


def exit_on_sigterm(program: str):
  """From now on SIGTERM prints one line and exits with Preempted's status (3)."""

  def stop(signum, frame):
    del frame
    if not _received:
      print(f'{program}: preempted: SIGTERM outside the training steps: nothing to save; '
            'run it again', file=sys.stderr)
    _received.append(signum)
    sys.exit(Preempted.exit_status)

  signal.signal(signal.SIGTERM, stop)
  sys.unraisablehook = _quiet_about_stops(sys.unraisablehook)


def _quiet_about_stops(hook):
  """`hook`, silent on the exit `stop` raised where Python could not raise it (a garbage-
  collector callback): exit_if_stopped exits in its place, and the one line is out."""

  def unraisable(info):
    if not (_received and isinstance(info.exc_value, SystemExit)):
      hook(info)
  return unraisable


def exit_if_stopped():
  """Exits (status 3) if a SIGTERM came whose exit was swallowed: Python drops an
  exception raised where a signal lands inside a garbage-collector callback (JAX
  registers one), and the program would go on."""
  if _received:
    sys.exit(Preempted.exit_status)
