"""The results tables of the README and the docs pages are made from experiments/results/,
not written by hand."""

import pytest

from conftest import ROOT, load_module

report = load_module('experiments/report.py')


@pytest.mark.parametrize('page', list(report.PAGES))
def test_the_tables_of_each_page_are_what_the_results_files_give(page):
  text = (ROOT / page).read_text()
  assert report.render(page, text) == text, 'run python experiments/report.py'


def test_a_table_edited_by_hand_is_rewritten_from_its_file():
  fresh = report.render('README.md', (ROOT / 'README.md').read_text())
  edited = fresh.replace('| delta memory |', '| delta memory, better |', 1)
  assert edited != fresh
  assert report.render('README.md', edited) == fresh
