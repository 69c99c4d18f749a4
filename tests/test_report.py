"""The README's results tables are made from experiments/results/, not written by hand."""

from conftest import ROOT, load_module

report = load_module('experiments/report.py')


def test_the_readme_tables_are_what_the_results_files_give():
  readme = (ROOT / 'README.md').read_text()
  assert report.render(readme) == readme, 'run python experiments/report.py'


def test_a_table_edited_by_hand_is_rewritten_from_its_file():
  fresh = report.render((ROOT / 'README.md').read_text())
  edited = fresh.replace('| delta memory |', '| delta memory, better |', 1)
  assert edited != fresh
  assert report.render(edited) == fresh
