"""Host memory that stays mapped: glibc's malloc and CPython's frame stack.

Every program starts through `run(...)`, which sets both up before JAX starts its threads.

glibc's malloc: on a CPU, XLA allocates a step's temporary buffers afresh at every
execution (at 4 layers, d_model 128, batches of 12 rows of 64 tokens: one block of
about 40 MB, allocated by a worker thread) and frees them when the step ends. glibc,
left to its defaults, serves such blocks with a fresh mmap and gives freed memory back
to the kernel, so every step faults its buffers in again, page by page: ~10,000 page
faults a step, a quarter of the process's time spent in the kernel. The settings below
keep freed memory in the process for the next step instead:
- blocks up to 1 GiB come from the heap, not from mmap (M_MMAP_THRESHOLD);
- the heap's free top is returned to the kernel only beyond 1 GiB (M_TRIM_THRESHOLD);
- a worker thread's arena keeps its heaps (of at most 64 MiB each) when they fall
  empty: glibc unmaps a whole empty heap unless M_TOP_PAD is at least a heap's size,
  and without this the arena of the thread that runs the step maps and faults in a
  fresh heap at nearly every step;
- two arenas (M_ARENA_MAX): a block larger than a heap (at configs/default.py, one of
  about 150 MB a step) is mapped afresh at every step in a worker thread's own arena;
  with two arenas, threads share the main one (whose heap has no such limit) and one
  other, and the main one keeps it. The default config's system time goes from 6.9%
  to 3.4% at the same speed (experiments/results/kernel_time_two_arenas_frame_stack.md);
  one arena for all threads also kept it, but its lock made steps 9-21% slower
  (kernel_time_one_arena.md).
Nothing the model computes changes. On another C library (macOS, musl) this does
nothing.
"""

import ctypes
import platform
import types
from typing import Any, Callable

# mallopt's parameter numbers, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
SETTINGS = {_M_MMAP_THRESHOLD: 1 << 30, _M_TRIM_THRESHOLD: 1 << 30, _M_TOP_PAD: 1 << 26,
            _M_ARENA_MAX: 2}


def keep_freed_memory() -> bool:
  """Applies SETTINGS with glibc's mallopt; False where the C library is not glibc."""
  if platform.libc_ver()[0] != 'glibc':
    return False
  mallopt = ctypes.CDLL(None).mallopt
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  return all(mallopt(param, value) == 1 for param, value in SETTINGS.items())


# Stack slots of the frame `run` calls through: one frame of 2^17 slots (1 MiB) makes
# CPython 3.11+ allocate a 2 MiB chunk for its frame stack, and the frames called from
# it (about 1 MiB of them) are placed in that chunk's free half.
_ROOMY_FRAME_SLOTS = 1 << 17


def _call(program, args, kwargs):
  return program(*args, **kwargs)


_call_in_roomy_frame = types.FunctionType(
    _call.__code__.replace(co_stacksize=_ROOMY_FRAME_SLOTS), {})


def run(program: Callable[..., Any], *args, **kwargs) -> Any:
  """`program(*args, **kwargs)` with freed memory kept and a frame stack that stays mapped.

  CPython 3.11+ keeps Python frames on a stack of 16 KiB chunks, mapped with mmap when
  a call crosses into a new chunk and unmapped when it returns. Tracing a model runs
  deep call stacks that cross such a boundary again and again: compiling
  configs/default.py's step made 205,000 mmap/munmap pairs and a third of the
  process's system time. Called through a frame larger than a chunk, the program runs
  in one chunk of 2 MiB that stays mapped until it returns. Nothing it computes changes.
  """
  keep_freed_memory()
  return _call_in_roomy_frame(program, args, kwargs)
