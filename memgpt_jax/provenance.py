"""What produced a result: the command line and the commit of the code it ran."""

import pathlib
import shlex
import subprocess
import sys

_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
  try:
    return subprocess.run(['git', *args], cwd=_ROOT, capture_output=True, text=True,
                          check=False).stdout.strip()
  except OSError:  # no git on this machine
    return ''


def provenance() -> dict[str, str]:
  """{'command': how this process was started, 'commit': HEAD, '+ changes' when the
  tracked files differ from it ('' outside a git checkout)}."""
  script = pathlib.Path(sys.argv[0])
  if script.is_absolute() and script.is_relative_to(_ROOT):
    script = script.relative_to(_ROOT)
  commit = _git('rev-parse', '--short', 'HEAD')
  if commit and _git('status', '--porcelain', '--untracked-files=no'):
    commit += ' + changes'
  return {'command': shlex.join(['python', str(script), *sys.argv[1:]]), 'commit': commit}
