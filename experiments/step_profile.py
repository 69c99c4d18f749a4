"""Where a train step's time goes: a few steps under jax.profiler, each XLA op's time
charged to the part of the model that its HLO metadata (the op's name in the traced
program) places it in: attention, MLP, memory read, memory write, pointer, the rest of
the model (embeddings, norms, output layer), the loss, the optimizer; forward and
backward apart. Also by kind of op (matrix multiplies, the fused attention kernel,
the other fusions: what MFU leaves out), and the heaviest ops by name. For
experiments/bench.py. And what a compiled step sends between devices: the bytes of
its collectives (experiments/scale_check.py).

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
from typing import Callable, NamedTuple

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
# An HLO computation's first line, and an instruction: its name, opcode and the rest.
_COMPUTATION = re.compile(r'^(?:ENTRY )?%?([\w.\-]+) .*\{$')
_INSTRUCTION = re.compile(r'^\s+(?:ROOT )?%?([\w.\-]+) = (.*?) ([a-z][\w\-]*)\((.*)$')
_CALLS = re.compile(r'(?:calls|to_apply)=%?([\w.\-]+)')
KINDS = ('matmul', 'attention kernel', 'other fusions', 'copies', 'collectives', 'other ops')
_COLLECTIVES = ('all-gather', 'all-reduce', 'reduce-scatter', 'all-to-all',
                'collective-permute')


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


def _instructions(hlo_text: str) -> dict[str, tuple[str, str]]:
  """{op: (kind, its result's type)} for every instruction of every computation. The
  kind is one of KINDS: 'matmul' for a dot, a convolution, a GEMM library call or a
  fusion around one (cuBLAS, Triton, oneDNN); 'attention kernel' for cuDNN's fused
  attention; a fusion of anything else (element-wise maths, reductions, slicing)
  under 'other fusions'."""
  computations = collections.defaultdict(list)  # name -> [(op, type, opcode, rest)]
  current = None
  for line in hlo_text.splitlines():
    if (header := _COMPUTATION.match(line)) and not line.startswith(' '):
      current = header.group(1)
    elif current and (instruction := _INSTRUCTION.match(line)):
      computations[current].append(instruction.groups())

  def holds_matmul(computation: str, seen: frozenset = frozenset()) -> bool:
    return any(opcode in ('dot', 'convolution') or _is_gemm_call(opcode, rest) or any(
        called not in seen and holds_matmul(called, seen | {computation})
        for called in _CALLS.findall(rest)) for _, _, opcode, rest in computations[computation])

  found = {}
  for instructions in computations.values():
    for op, result, opcode, rest in instructions:
      if _is_attention_call(opcode, rest):
        kind = 'attention kernel'
      elif opcode in ('dot', 'convolution') or _is_gemm_call(opcode, rest):
        kind = 'matmul'
      elif opcode == 'fusion':
        kind = ('matmul' if any(holds_matmul(c) for c in _CALLS.findall(rest))
                else 'other fusions')
      elif opcode in ('copy', 'transpose') or opcode.startswith('copy-'):
        kind = 'copies'
      elif opcode.removesuffix('-start').removesuffix('-done') in _COLLECTIVES:
        kind = 'collectives'
      else:
        kind = 'other ops'
      found[op] = kind, re.sub(r'\{[^}]*\}', '', result)  # without layouts
  return found


def _is_attention_call(opcode: str, rest: str) -> bool:
  """cuDNN's fused attention (its configuration names GEMMs too: asked first)."""
  return opcode == 'custom-call' and 'fmha' in rest


def _is_gemm_call(opcode: str, rest: str) -> bool:
  return opcode == 'custom-call' and any(
      library in rest for library in ('cublas', 'gemm', 'onednn$matmul'))


class Op(NamedTuple):
  """An op of the compiled step as the profile reports it."""
  part: str
  direction: str  # 'forward', 'backward' or '' (the update)
  kind: str  # one of KINDS
  name: str  # its name in the traced program (HLO metadata), '' where it has none
  result: str  # its result's type: 'bf16[16,1024,2816]'


UNNAMED = Op('other', '', 'other ops', '', '')  # an op of the trace the HLO does not name


def step_ops(hlo_text: str) -> dict[str, Op]:
  """The optimized HLO of the compiled step -> {op: Op}."""
  names = dict(_METADATA.findall(hlo_text))
  return {op: Op(*(part_of(names[op]) if op in names else ('other', '')), kind,
                 names.get(op, ''), result)
          for op, (kind, result) in _instructions(hlo_text).items()}


class StepProfile(NamedTuple):
  parts: dict[str, dict[str, float]]  # {part: {direction: ms per step}}
  kinds: dict[str, float]  # {kind of op: ms per step}
  heaviest: list[dict]  # the ops that took the most time: op, ms per step, Op's fields


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
            module: str = 'train_step', heaviest: int = 40) -> StepProfile:
  """Runs `run_step` (one step, waited for) `steps` times under the profiler -> its
  time by part ({part: {direction: ms per step}}, ops the metadata names no part of
  under 'other'), by kind of op, and the `heaviest` ops."""
  ops = step_ops(hlo_text)
  with tempfile.TemporaryDirectory() as log_dir:
    jax.profiler.start_trace(log_dir)
    for _ in range(steps):
      run_step()
    jax.profiler.stop_trace()
    trace_file = max(pathlib.Path(log_dir).rglob('*.trace.json.gz'),
                     key=lambda p: p.stat().st_mtime)
    with gzip.open(trace_file) as f:
      trace = json.load(f)
  op_ms = collections.Counter()  # ms per step of each op
  for event in _device_events(trace, module):
    op_ms[event['args']['hlo_op']] += event['dur'] / 1e3 / steps  # trace times are in us
  parts = collections.defaultdict(lambda: collections.defaultdict(float))
  kinds = collections.Counter()
  for op, ms in op_ms.items():
    placed = ops.get(op, UNNAMED)
    parts[placed.part][placed.direction] += ms
    kinds[placed.kind] += ms
  unplaced = {op: ms for op, ms in op_ms.items() if not ops.get(op, UNNAMED).name}
  total = sum(op_ms.values())
  if total and sum(unplaced.values()) > 0.2 * total:  # say which, so it can be mended
    logging.warning('step_profile: %.0f%% of the step in ops its program does not name, '
                    'e.g. %s', 100 * sum(unplaced.values()) / total,
                    ', '.join(f'{op} ({ms:.1f} ms)' for op, ms in
                              collections.Counter(unplaced).most_common(3)))
  return StepProfile(
      parts={part: dict(by_direction) for part, by_direction in parts.items()},
      kinds=dict(kinds),
      heaviest=[{'op': op, 'ms': ms, **ops.get(op, UNNAMED)._asdict()}
                for op, ms in op_ms.most_common(heaviest)])


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


def kinds_table(kinds: dict[str, dict[str, float]]) -> list[str]:
  """Markdown lines: each profiled model's ms per step by kind of op."""
  names = list(kinds)
  lines = ['By kind of op (matmul: the matrix multiplies, which MFU counts; attention '
           'kernel: the fused attention call; other fusions: element-wise maths, '
           'reductions, slicing), ms per step:', '',
           '| kind | ' + ' | '.join(names) + ' |', '|---|' + '---|' * len(names)]
  for kind in KINDS:
    lines.append(f'| {kind} | ' + ' | '.join(
        f'{kinds[name].get(kind, 0.0):.1f}' for name in names) + ' |')
  return lines


def heaviest_table(heaviest: dict[str, list[dict]], rows: int = 10) -> list[str]:
  """Markdown lines: each profiled model's `rows` heaviest ops, by their names in the
  program (an op XLA made has none: its result's type says what it is)."""
  lines = ['The heaviest ops (the end of each one\'s name in the program):', '',
           '| model | op | ms per step | kind | part | name |', '|---|---|---|---|---|---|']
  for model, ops in heaviest.items():
    for op in ops[:rows]:
      part = f'{op["part"]} ({op["direction"]})' if op['direction'] else op['part']
      name = '/'.join(op['name'].split('/')[-3:]) or op['result']
      lines.append(f'| {model} | {op["op"]} | {op["ms"]:.2f} | {op["kind"]} | {part} | '
                   f'`{name}` |')
  return lines
