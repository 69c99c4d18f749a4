"""Filler text in language for the synthetic tasks: lines of the Python standard
library's own source, the corpus every machine has (data.task.filler='corpus').

The lines come from the library's top-level modules in sorted order, ASCII only, and
never name a word the task asks about (its people and places), so the filler carries no
answer. The library differs between Python versions: a task built from it names the
corpus's digest (builders.synthetic_config), so another version builds its own data.
"""

import functools
import hashlib
import pathlib
import sysconfig

import numpy as np

_CORPUS_BYTES = 1 << 20  # the first MiB of the modules' lines: plenty of variety


@functools.cache
def _module_lines() -> tuple[bytes, ...]:
  root = pathlib.Path(sysconfig.get_paths()['stdlib'])
  lines, total = [], 0
  for path in sorted(root.glob('*.py')):
    for line in path.read_bytes().splitlines(keepends=True):
      if line.isascii() and line.strip():
        lines.append(line)
        total += len(line)
    if total >= _CORPUS_BYTES:
      break
  return tuple(lines)


@functools.cache
def corpus_lines(excluded: tuple[str, ...]) -> tuple[np.ndarray, ...]:
  """The corpus's lines (int32 byte ids, newline kept) that contain none of the
  `excluded` words in any case."""
  words = [word.lower().encode() for word in excluded]
  return tuple(np.frombuffer(line, np.uint8).astype(np.int32) for line in _module_lines()
               if not any(word in line.lower() for word in words))


def corpus_digest() -> str:
  """Names the corpus: the same on every machine with the same standard library."""
  return hashlib.sha256(b''.join(_module_lines())).hexdigest()[:12]


def corpus_text(rng: np.random.Generator, length: int,
                excluded: tuple[str, ...]) -> np.ndarray:
  """`length` byte ids of consecutive corpus lines from a random one (wrapping round)."""
  lines = corpus_lines(excluded)
  start, picked, total = int(rng.integers(len(lines))), [], 0
  while total < length:
    picked.append(lines[(start + len(picked)) % len(lines)])
    total += len(picked[-1])
  return np.concatenate(picked)[:length]
