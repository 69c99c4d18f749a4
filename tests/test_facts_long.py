"""experiments/facts_long.py: its documents are the facts task's distance splits, one
byte a token, after `offset` tokens of source that name nobody, in whole segments."""

import numpy as np
import pytest

from conftest import ROOT, load_module
from memgpt_jax import config_lib
from memgpt_jax.data import synthetic

facts_long = load_module('experiments/facts_long.py')


@pytest.mark.parametrize('distance,offset', [(0, 0), (3, 0), (1, 100)])
def test_documents_are_the_distance_split_after_the_offset(distance, offset):
  task = config_lib.load_config(ROOT / 'configs' / 'synthetic.py').data.task
  task.context_segments, task.filler = 2, 'corpus'
  segment_len = 256
  tokens, answers = facts_long.documents(task, segment_len, distance, 3, offset)
  length = (2 + distance) * segment_len + 1
  segments = -(-(offset + length - 1) // segment_len)
  assert tokens.dtype == np.uint8 and tokens.shape == answers.shape == (
      3, segments * segment_len + 1)
  for index in range(3):
    example = synthetic.make_example('facts', task, segment_len, 0,
                                     synthetic.eval_split(distance), index)
    np.testing.assert_array_equal(tokens[index, offset:offset + length], example['tokens'])
    np.testing.assert_array_equal(answers[index, offset:offset + length], example['answers'])
    assert answers[index].sum() == example['answers'].sum() > 0
    before = bytes(tokens[index, :offset]).decode()
    assert not any(name in before for name in synthetic.PEOPLE + synthetic.PLACES)
    assert set(bytes(tokens[index, offset + length:]).decode()) <= {' '}
