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


def test_a_transcript_shows_its_ends_and_counts_the_turns_between():
  turns = [{'user': f'turn {i}', 'assistant': f'reply {i}'} for i in range(10)]
  fact = {'relation': 'cat', 'name': 'Hugo', 'told_at_turn': 1, 'asked_at_turn': 10,
          'reply': 'Hugo.  ', 'right': True, 'tokens_between': 250}
  lines = report.chat_transcript_lines(
      {'template': {'user': 'User: ', 'assistant': 'Assistant: '}, 'turns': turns,
       'window_tokens': 100, 'facts': [fact]}, shown=4)
  gap = lines.index('... 6 more turns of small talk ...')
  assert lines[1:gap] == ['User: turn 0', 'Assistant: reply 0', 'User: turn 1',
                          'Assistant: reply 1']
  assert lines[gap + 1:gap + 5] == ['User: turn 8', 'Assistant: reply 8', 'User: turn 9',
                                    'Assistant: reply 9']
  assert lines[-1].endswith('| 1 | 10 | 250 | 2.5 | Hugo. | yes |')
