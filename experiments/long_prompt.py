"""memgpt-sample on prompts of 1K to 1M characters: its peak memory must stay flat and
the prompt's feed take time linear in its length.

  python experiments/long_prompt.py [--workdir=/tmp/long_prompt] [--sizes=1000,100000,1000000]
      [--rounds=2] [--out=experiments/results] [--name=long_prompt]

Trains configs/tiny.py into --workdir (unless it holds a checkpoint), then runs
`/usr/bin/time -v memgpt-sample --prompt_file=F --max_new_tokens=20
--compilation_cache=` (every run compiles the same programs) on the first N
characters of the Python standard library's source, for each size and round, sizes
taking turns; reads the peak resident memory and the wall time /usr/bin/time reports.
The feed alone (Decoder.prefill, after its compilation) is also timed in this process,
the least of the rounds. Writes <out>/<name>.md and .json.
"""

import pathlib
import re
import subprocess
import sys
import sysconfig
import time

from absl import app
from absl import flags
from absl import logging
import jax

from memgpt_jax import sampling
from memgpt_jax.provenance import devices, provenance, write_results
from memgpt_jax.training import workdir as workdir_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
_WORKDIR = flags.DEFINE_string('workdir', '/tmp/long_prompt', 'A tiny model is trained here.')
_SIZES = flags.DEFINE_list('sizes', ['1000', '100000', '1000000'], 'Prompt lengths, characters.')
_ROUNDS = flags.DEFINE_integer('rounds', 2, 'Runs of each size, sizes taking turns.')
_OUT = flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
_NAME = flags.DEFINE_string('name', 'long_prompt', 'Results file name.')


def stdlib_text(chars: int) -> str:
  """The first `chars` characters of the standard library's *.py files, in name order."""
  pieces, total = [], 0
  for path in sorted(pathlib.Path(sysconfig.get_paths()['stdlib']).glob('*.py')):
    pieces.append(path.read_text(encoding='utf-8', errors='replace'))
    total += len(pieces[-1])
    if total >= chars:
      break
  return ''.join(pieces)[:chars]


def timed_sample(workdir: pathlib.Path, prompt_file: pathlib.Path) -> dict:
  """One memgpt-sample run under /usr/bin/time -v: its peak RSS (MiB) and wall seconds."""
  result = subprocess.run(
      ['/usr/bin/time', '-v', sys.executable, '-m', 'memgpt_jax.cli.sample',
       f'--workdir={workdir}', f'--prompt_file={prompt_file}', '--max_new_tokens=20',
       '--compilation_cache='], capture_output=True, text=True, cwd=ROOT, check=False)
  if result.returncode:
    raise RuntimeError(f'memgpt-sample failed: {result.stderr[-2000:]}')
  peak_kb = int(re.search(r'Maximum resident set size \(kbytes\): (\d+)', result.stderr)[1])
  wall = re.search(r'Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)', result.stderr)[1]
  seconds = sum(float(part) * 60 ** index for index, part in enumerate(wall.split(':')[::-1]))
  return {'peak_mib': peak_kb / 1024, 'wall_seconds': seconds}


def feed_seconds(workdir: pathlib.Path, texts: dict[int, str], rounds: int) -> dict[int, float]:
  """The least time of Decoder.prefill over each prompt, after one compiling run."""
  decoder, tokenizer, _ = sampling.load_decoder(workdir)
  ids = {size: tokenizer.encode(text)[None, :] for size, text in texts.items()}
  jax.block_until_ready(decoder.prefill(decoder.start(1), ids[min(ids)]))
  seconds = {size: [] for size in ids}
  for _ in range(rounds):
    for size, row in ids.items():
      start = time.perf_counter()
      jax.block_until_ready(decoder.prefill(decoder.start(1), row))
      seconds[size].append(time.perf_counter() - start)
  return {size: min(values) for size, values in seconds.items()}


def markdown(report: dict) -> str:
  sizes = report['sizes']
  base, mid, top = (str(s) for s in (sizes[0], sizes[-2], sizes[-1]))
  rows = report['results']
  lines = [f'# memgpt-sample on long prompts: {report["name"]}', '',
           f'`{report["command"]}` at commit {report["commit"]} on {report["devices"]}, '
           f'configs/tiny.py trained {report["train_steps"]} steps, 20 new tokens; '
           f'{report["rounds"]} runs of each size, sizes taking turns. Peak memory and '
           'wall time are /usr/bin/time -v\'s for the whole program (start-up, restore, '
           'compilation, feed, decoding); the feed alone is Decoder.prefill timed in '
           'one process after its compilation, the least of the rounds. The machine '
           '(2 cores) was shared with other work: absolute times move from run to run, '
           'the ratios within this run are what the table compares.', '',
           '| prompt characters | peak RSS MiB (max) | / smallest | wall s (min) | '
           'feed s (min) | feed / previous size |', '|---|---|---|---|---|---|']
  previous = None
  for size in map(str, sizes):
    row = rows[size]
    ratio = f'{row["feed_seconds"] / rows[previous]["feed_seconds"]:.1f}' if previous else ''
    lines.append(f'| {int(size):,} | {row["peak_mib"]:.0f} | '
                 f'{row["peak_mib"] / rows[base]["peak_mib"]:.2f} | {row["wall_seconds"]:.1f} | '
                 f'{row["feed_seconds"]:.2f} | {ratio} |')
    previous = size
  lines += ['', f'Peak memory at {int(top):,} characters: '
            f'{rows[top]["peak_mib"] / rows[base]["peak_mib"]:.2f}x that at {int(base):,} '
            f'(aimed for: at most 1.3x). Feed at {int(top):,}: '
            f'{rows[top]["feed_seconds"] / rows[mid]["feed_seconds"]:.1f}x that at '
            f'{int(mid):,} (linear: {int(top) / int(mid):.0f}x; aimed for: at most 12x).']
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  made_by = provenance()  # the code as it was when the runs started
  workdir = pathlib.Path(_WORKDIR.value)
  steps = 30
  if not workdir_lib.has_checkpoint(workdir):
    subprocess.run([sys.executable, '-m', 'memgpt_jax.cli.train', '--config=configs/tiny.py',
                    f'--workdir={workdir}', f'--config.train.num_steps={steps}', '--nosample'],
                   cwd=ROOT, check=True, capture_output=True)
  sizes = sorted(int(s) for s in _SIZES.value)
  text = stdlib_text(sizes[-1])
  texts = {size: text[:size] for size in sizes}
  files = {}
  for size in sizes:
    files[size] = workdir / f'prompt_{size}.txt'
    files[size].write_text(texts[size], encoding='utf-8')
  runs = {size: [] for size in sizes}
  for _ in range(_ROUNDS.value):
    for size in sizes:
      runs[size].append(timed_sample(workdir, files[size]))
      print(f'[long_prompt] {size:,} characters: {runs[size][-1]}', flush=True)
  feeds = feed_seconds(workdir, texts, _ROUNDS.value)
  results = {str(size): {'peak_mib': max(r['peak_mib'] for r in runs[size]),
                         'wall_seconds': min(r['wall_seconds'] for r in runs[size]),
                         'feed_seconds': feeds[size], 'runs': runs[size]} for size in sizes}
  report = {'name': _NAME.value, **made_by, 'devices': devices(), 'sizes': sizes,
            'rounds': _ROUNDS.value, 'train_steps': steps, 'results': results}
  write_results(_OUT.value, _NAME.value, report, markdown(report))
  print(markdown(report))


if __name__ == '__main__':
  app.run(main)
