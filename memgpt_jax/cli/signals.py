"""SIGTERM answered from a program's first lines: a scheduler's stop while JAX imports
(seconds) or data is prepared gets the documented status and one line, not the
shell's 143. The training loop answers it itself while steps run (checkpoint, then 3).
Imports nothing heavy: it runs before JAX is imported."""

import signal
import sys

from memgpt_jax.errors import Preempted


def exit_on_sigterm(program: str):
  """From now on SIGTERM prints one line and exits with Preempted's status (3)."""

  def stop(signum, frame):
    del signum, frame
    print(f'{program}: preempted: SIGTERM outside the training steps: nothing to save; '
          'run it again', file=sys.stderr)
    sys.exit(Preempted.exit_status)

  signal.signal(signal.SIGTERM, stop)
