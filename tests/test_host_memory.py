"""host_memory.run: the program's result, and a frame stack that is not mapped afresh."""

import resource
import sys

import pytest

from memgpt_jax import host_memory


def _descend(depth: int) -> int:
  return 0 if depth == 0 else 1 + _descend(depth - 1)


def _page_faults_of_deep_calls(calls: int) -> int:
  """Minor page faults while a call stack 400 deep is built and unwound `calls` times."""
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(calls):
    _descend(400)
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_run_returns_what_the_program_returns():
  assert host_memory.run(lambda a, b=0: (a, b), 1, b=2) == (1, 2)


@pytest.mark.skipif(sys.version_info < (3, 11), reason='frames live in chunks from 3.11')
def test_deep_calls_inside_run_fault_in_no_fresh_frame_chunks():
  calls = 2000
  assert _page_faults_of_deep_calls(calls) >= calls  # plain: a fresh chunk per descent
  assert host_memory.run(_page_faults_of_deep_calls, calls) < calls // 20
