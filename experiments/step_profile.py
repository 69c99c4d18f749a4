"""Where a train step's time goes: a few steps under jax.profiler, each XLA op's time
charged to the part of the model that its HLO metadata (the op's name in the traced
program) places it in: attention, MLP, memory read, memory write, pointer, the rest of
the model (embeddings, norms, output layer), the loss, the optimizer; forward and
backward apart. For experiments/bench.py. And what a compiled step sends between
devices: the bytes of its collectives (experiments/scale_check.py).

On a CPU an op's time is the sum over the threads that ran it (XLA splits large ops
over the intra-op thread pool), so the parts add up to more than the step's wall time
while keeping their proportions; on an accelerator it is the device's kernel time.
"""

import collections
import gzip
import json
import math
import pathlib
import re
import tempfile
from typing import Callable

from absl import logging
import jax

# XLA options of the program a profile runs, by backend. On a GPU, no command buffers
# (CUDA graphs): the profiler sees a graph's kernels as the one op that launched the
# graph, so every op of the step would land in 'other'.
COMPILER_OPTIONS = {'gpu': {'xla_gpu_enable_command_buffer': ''}}

# (part, substrings of an op's name that put it there): the first match wins.
PARTS = (
    ('pointer', ('/pointer/',)),
    ('memory write', ('write_segment',)),
    ('memory read', ('memory_read', 'slot_read')),
    ('attention', ('/attention',)),
    ('MLP', ('/mlp',)),
    ('rest of the model', ('MemGPT',)),
)
_METADATA = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = .*?metadata=\{[^}]*op_name="([^"]*)"',
                       re.MULTILINE)


_COLLECTIVE = re.compile(r'= (.*?) (all-gather|all-reduce|reduce-scatter|all-to-all|'
                         r'collective-permute)(?:-start)?\(')
_ARRAY = re.compile(r'\b([a-z]+[0-9]*)\[([0-9,]*)\]')
_BYTES = {'f64': 8, 's64': 8, 'u64': 8, 'f32': 4, 's32': 4, 'u32': 4, 'bf16': 2, 'f16': 2,
          's16': 2, 'u16': 2, 's8': 1, 'u8': 1, 'pred': 1}


def collective_bytes(hlo: str) -> dict[str, int]:
  """{collective kind: bytes of its results on one device} over an optimized HLO
  module's text (a combined collective's result is a tuple: all of it counts)."""
  totals = collections.Counter()
  for match in _COLLECTIVE.finditer(hlo):
    result, kind = match.groups()
    for dtype, dims in _ARRAY.findall(result):
      totals[kind] += _BYTES[dtype] * math.prod(int(d) for d in dims.split(',') if d)
  return dict(totals)


def part_of(op_name: str) -> tuple[str, str]:
  """An HLO op's name in the program -> (part, 'forward' | 'backward' | '' (the update))."""
  differentiated = 'jvp(' in op_name or 'transpose(' in op_name
  direction = 'backward' if 'transpose(' in op_name else 'forward'
  for part, markers in PARTS:
    if any(marker in op_name for marker in markers):
      return part, direction
  return ('loss', direction) if differentiated else ('optimizer', '')


def op_parts(hlo_text: str) -> dict[str, tuple[str, str]]:
  """The optimized HLO of the compiled step -> {op: (part, direction)}."""
  return {op: part_of(name) for op, name in _METADATA.findall(hlo_text)}


def _device_events(trace: dict, module: str) -> list[dict]:
  """The trace's op events of `module`: the accelerator's kernels where there is one,
  else the CPU's (run by the host's XLA thread pool)."""
  processes = {e['pid']: e['args']['name'] for e in trace['traceEvents']
               if e.get('ph') == 'M' and e.get('name') == 'process_name'}
  accelerators = {pid for pid, name in processes.items() if re.search(r'/device:(GPU|TPU)', name)}
  return [e for e in trace['traceEvents']
          if e.get('ph') == 'X' and module in e.get('args', {}).get('hlo_module', '')
          and 'hlo_op' in e['args'] and (not accelerators or e['pid'] in accelerators)]


def profile(run_step: Callable[[], None], hlo_text: str, steps: int,
            module: str = 'train_step') -> dict[str, dict[str, float]]:
  """Runs `run_step` (one step, waited for) `steps` times under the profiler ->
  {part: {direction: ms per step}}, ops the metadata names no part of under 'other'."""
  parts = op_parts(hlo_text)
  with tempfile.TemporaryDirectory() as log_dir:
    jax.profiler.start_trace(log_dir)
    for _ in range(steps):
      run_step()
    jax.profiler.stop_trace()
    trace_file = max(pathlib.Path(log_dir).rglob('*.trace.json.gz'),
                     key=lambda p: p.stat().st_mtime)
    with gzip.open(trace_file) as f:
      trace = json.load(f)
  milliseconds = collections.defaultdict(lambda: collections.defaultdict(float))
  unplaced = collections.Counter()  # ms per step of each op no part claims
  for event in _device_events(trace, module):
    op = event['args']['hlo_op']
    part, direction = parts.get(op, ('other', ''))
    milliseconds[part][direction] += event['dur'] / 1e3 / steps  # trace times are in us
    if op not in parts:
      unplaced[op] += event['dur'] / 1e3 / steps
  total = sum(sum(by_direction.values()) for by_direction in milliseconds.values())
  if total and sum(unplaced.values()) > 0.2 * total:  # say which, so it can be mended
    logging.warning('step_profile: %.0f%% of the step in ops its program does not name, '
                    'e.g. %s', 100 * sum(unplaced.values()) / total,
                    ', '.join(f'{op} ({ms:.1f} ms)' for op, ms in unplaced.most_common(3)))
  return {part: dict(by_direction) for part, by_direction in milliseconds.items()}


def table(profiles: dict[str, dict[str, dict[str, float]]]) -> list[str]:
  """Markdown lines: each profiled model's ms per step by part, total (forward /
  backward)."""
  names = list(profiles)
  lines = ['Where the step time goes (experiments/step_profile.py: each XLA op charged to '
           'the part of the model its name in the program places it in; on a CPU summed '
           'over the threads that ran it), ms per step, total (forward / backward):', '',
           '| part | ' + ' | '.join(names) + ' |', '|---|' + '---|' * len(names)]
  for part in [part for part, _ in PARTS] + ['loss', 'optimizer', 'other']:
    cells = []
    for name in names:
      times = profiles[name].get(part, {})
      split = ' / '.join(f'{times[d]:.1f}' for d in ('forward', 'backward') if d in times)
      total = sum(times.values())
      cells.append(f'{total:.1f} ({split})' if len(times) > 1 else f'{total:.1f}')
    lines.append(f'| {part} | ' + ' | '.join(cells) + ' |')
  totals = [sum(sum(times.values()) for times in profiles[name].values()) for name in names]
  return lines + ['| all | ' + ' | '.join(f'{total:.1f}' for total in totals) + ' |']
