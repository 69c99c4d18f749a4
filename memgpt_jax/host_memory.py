"""glibc's malloc set up to keep the memory XLA's CPU runtime frees at every step.

Every program calls `keep_freed_memory()` first thing, before JAX starts its threads.

Why: on a CPU, XLA allocates a step's temporary buffers afresh at every execution (at
4 layers, d_model 128, batches of 12 rows of 64 tokens: one block of about 40 MB,
allocated by a worker thread) and frees them when the step ends. glibc, left to its
defaults, serves such blocks with a fresh mmap and gives freed memory back to the
kernel, so every step faults its buffers in again, page by page: ~10,000 page faults
a step, a quarter of the process's time spent in the kernel. The settings below keep
freed memory in the process for the next step instead:
- blocks up to 1 GiB come from the heap, not from mmap (M_MMAP_THRESHOLD);
- the heap's free top is returned to the kernel only beyond 1 GiB (M_TRIM_THRESHOLD);
- a worker thread's arena keeps its heaps (of at most 64 MiB each) when they fall
  empty: glibc unmaps a whole empty heap unless M_TOP_PAD is at least a heap's size,
  and without this the arena of the thread that runs the step maps and faults in a
  fresh heap at nearly every step.
A block larger than a heap, allocated by a worker thread, is still mapped afresh
(at configs/default.py, one of about 150 MB a step). One arena for all threads
(M_ARENA_MAX=1) would keep it, but its lock made the default config's steps 9% slower
and the tiny config's 21% (experiments/results/kernel_time_one_arena.md).
Nothing the model computes changes. On another C library (macOS, musl) this does
nothing.
"""

import ctypes
import platform

# mallopt's parameter numbers, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
SETTINGS = {_M_MMAP_THRESHOLD: 1 << 30, _M_TRIM_THRESHOLD: 1 << 30, _M_TOP_PAD: 1 << 26}


def keep_freed_memory() -> bool:
  """Applies SETTINGS with glibc's mallopt; False where the C library is not glibc."""
  if platform.libc_ver()[0] != 'glibc':
    return False
  mallopt = ctypes.CDLL(None).mallopt
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  return all(mallopt(param, value) == 1 for param, value in SETTINGS.items())
