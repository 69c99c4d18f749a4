"""experiments/facts_long.py: its documents are the facts task's distance splits, one
byte a token, with every answer in the question's segment (the last)."""

import numpy as np
import pytest

from conftest import ROOT, load_module
from memgpt_jax import config_lib
from memgpt_jax.data import synthetic

facts_long = load_module('experiments/facts_long.py')


@pytest.mark.parametrize('distance', [0, 3])
def test_documents_are_the_distance_split_with_answers_in_the_last_segment(distance):
  task = config_lib.load_config(ROOT / 'configs' / 'synthetic.py').data.task
  task.context_segments, task.filler = 2, 'corpus'
  segment_len = 256
  tokens, answers = facts_long.documents(task, segment_len, distance, rows=3)
  assert tokens.dtype == np.uint8 and tokens.shape == (3, (2 + distance) * segment_len + 1)
  assert answers.shape == (3, segment_len + 1)
  for index in range(3):
    example = synthetic.make_example('facts', task, segment_len, 0,
                                     synthetic.eval_split(distance), index)
    np.testing.assert_array_equal(tokens[index], example['tokens'])
    np.testing.assert_array_equal(answers[index], example['answers'][-segment_len - 1:])
    assert example['answers'].sum() == answers[index].sum() > 0
