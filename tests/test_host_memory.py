"""host_memory.run: the program's result, and a frame stack that is not mapped afresh."""

import resource
import sys
import threading

import pytest

from memgpt_jax import host_memory


def _descend(depth: int) -> int:
  return 0 if depth == 0 else 1 + _descend(depth - 1)


def _page_faults_of_deep_calls(calls: int) -> int:
  """This thread's minor page faults while a call stack 400 deep is built and unwound
  `calls` times."""
  before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
  for _ in range(calls):
    _descend(400)
  return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before


def _in_a_new_thread(function, *args):
  """function(*args) on a thread of its own: a frame stack of its own, from its start."""
  result = []
  thread = threading.Thread(target=lambda: result.append(function(*args)))
  thread.start()
  thread.join()
  return result[0]


def test_run_returns_what_the_program_returns():
  assert host_memory.run(lambda a, b=0: (a, b), 1, b=2) == (1, 2)


@pytest.mark.skipif(sys.version_info < (3, 11) or not sys.platform.startswith('linux'),
                    reason='frames live in chunks from CPython 3.11; RUSAGE_THREAD is Linux')
def test_deep_calls_inside_run_fault_in_no_fresh_frame_chunks():
  calls = 2000
  plain = _in_a_new_thread(_page_faults_of_deep_calls, calls)
  inside_run = _in_a_new_thread(host_memory.run, _page_faults_of_deep_calls, calls)
  assert plain >= calls  # a fresh chunk mapped and faulted in at every descent
  assert inside_run < calls // 20
