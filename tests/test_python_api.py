"""docs/python_api.md's examples, run in order against a small trained workdir: the
page cannot drift from the API."""

import re

import pytest

from conftest import ROOT, trained_on_text


@pytest.fixture(scope='module')
def workdir(data_dir, tmp_path_factory):
  return trained_on_text(data_dir, tmp_path_factory.mktemp('api'))


def test_the_python_api_page_runs(workdir):
  page = (ROOT / 'docs' / 'python_api.md').read_text()
  blocks = re.findall(r'```python\n(.*?)```', page, flags=re.DOTALL)
  assert len(blocks) >= 4
  namespace = {'workdir': str(workdir)}
  for block in blocks:
    exec(compile(block, 'docs/python_api.md', 'exec'), namespace)  # pylint: disable=exec-used
  assert isinstance(namespace['more'], str)
