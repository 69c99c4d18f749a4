"""What produced a result: the command line, the commit of the code it ran and the
devices; and the results files that carry them."""

import json
import os
import pathlib
import shlex
import subprocess
import sys

import jax

_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
  try:
    return subprocess.run(['git', *args], cwd=_ROOT, capture_output=True, text=True,
                          check=False).stdout.strip()
  except OSError:  # no git on this machine
    return ''


def provenance() -> dict[str, str]:
  """{'command': how this process was started (XLA_FLAGS, which change the compiled
  program, in front where set), 'commit': HEAD, '+ changes' when the tracked files
  differ from it, results files aside: a driver rewriting its own results is no change
  to the code ('' outside a git checkout), 'jax': the version that ran it}."""
  script = pathlib.Path(sys.argv[0])
  if script.resolve().is_relative_to(_ROOT):  # named from the checkout's root, wherever run
    script = script.resolve().relative_to(_ROOT)
  commit = _git('rev-parse', '--short', 'HEAD')
  if commit and _git('status', '--porcelain', '--untracked-files=no', '--', '.',
                     ':(exclude)experiments/results'):
    commit += ' + changes'
  command = shlex.join(['python', str(script), *sys.argv[1:]])
  if xla_flags := os.environ.get('XLA_FLAGS', '').strip():
    command = f'XLA_FLAGS={shlex.quote(xla_flags)} {command}'
  return {'command': command, 'commit': commit, 'jax': jax.__version__}


def devices() -> str:
  """'8 x cpu': the devices a result was measured on."""
  return f'{jax.device_count()} x {jax.devices()[0].device_kind}'


def write_results(out: str | pathlib.Path, name: str, report: dict, markdown: str) -> None:
  """<out>/<name>.json (every number of `report`) and <out>/<name>.md (`markdown`, the
  tables made from it): the pair experiments/report.py reads."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  (out / f'{name}.json').write_text(json.dumps(report, indent=1) + '\n')
  (out / f'{name}.md').write_text(markdown)
