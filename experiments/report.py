"""Writes the README's results tables from the results files in experiments/results/.

  python experiments/report.py [--check]

A table sits in README.md between `<!-- table:NAME -->` and `<!-- /table:NAME -->`,
NAME a key of TABLES below: each is made from one results file, never by hand.
--check changes nothing and exits 1 when a table differs from what its file gives
(tests/test_report.py runs it).
"""

import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'experiments' / 'results'


def _load(name: str) -> dict:
  return json.loads((RESULTS / f'{name}.json').read_text())


def _pct(stat) -> str:
  return '—' if stat is None else f'{100 * stat[0]:.1f} ± {100 * stat[1]:.1f}'


def _rows(report: dict) -> dict[str, dict]:
  return {row['label']: row for row in report['summary']}


def _source(report: dict, name: str) -> str:
  return (f'[`{name}`](experiments/results/{name}.md): `{report["command"]}`, '
          f'commit {report["commit"]}, {report["wall_seconds"] / 60:.0f} min on '
          f'{report["platform"].upper()}, seeds {report["seeds"]}')


def recall_table() -> str:
  """Core recall (6 pairs) per distance, each memory kind and none."""
  report = _load('core_recall')
  rows = _rows(report)
  names = {'recall/delta': 'delta memory', 'recall/slots': 'slot memory, fixed gate',
           'recall/slots_gru': 'slot memory, gru gate',
           'recall/memory_off': 'memory off (leak check: chance)'}
  distances = list(next(iter(rows.values()))['distances'])
  lines = ['| recall, answer accuracy % | params | '
           + ' | '.join(f'D={d}' for d in distances) + ' | chance |',
           '|---|---|' + '---|' * (len(distances) + 1)]
  for label, name in names.items():
    row = rows[label]
    cells = [_pct(row['distances'][d]['accuracy']) for d in distances]
    lines.append(f'| {name} | {row["params"]:,} | ' + ' | '.join(cells)
                 + f' | {100 * row["chance"]:.1f} |')
  return '\n'.join(lines + ['', _source(report, 'core_recall')])


TABLES = {'recall': recall_table}


def render(readme: str) -> str:
  """The README with every table block replaced by its freshly made table."""
  for name, make in TABLES.items():
    pattern = re.compile(rf'(<!-- table:{name} -->\n).*?(\n<!-- /table:{name} -->)', re.S)
    if not pattern.search(readme):
      raise SystemExit(f'report.py: README.md has no <!-- table:{name} --> block')
    readme = pattern.sub(lambda m: m.group(1) + make() + m.group(2), readme)
  return readme


def main(argv: list[str]) -> int:
  path = ROOT / 'README.md'
  current = path.read_text()
  fresh = render(current)
  if '--check' in argv:
    if fresh != current:
      print('report.py: README.md tables differ from experiments/results/: run '
            'python experiments/report.py', file=sys.stderr)
      return 1
    return 0
  path.write_text(fresh)
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
