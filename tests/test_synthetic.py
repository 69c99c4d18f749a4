"""Synthetic long-range tasks: determinism, recoverable answers, layout, and the leak check."""

import re

import jax
import ml_collections
import numpy as np
import pytest

from conftest import ROOT, init_params, tiny_model
from memgpt_jax import config_lib
from memgpt_jax import losses
from memgpt_jax.data import builders
from memgpt_jax.data import pipeline
from memgpt_jax.data import synthetic
from memgpt_jax.data.errors import DataError
from memgpt_jax.data.tokenizer import ByteTokenizer

T, K = 32, 3
# The tasks whose blocks fit T = 32 (facts' sentences and dialogue's turns need longer
# segments: their own tests).
SHORT_BLOCKS = tuple(task for task in synthetic.TASKS if task not in ('facts', 'dialogue'))


def _config(tmp_path=None, source: str = 'recall') -> ml_collections.ConfigDict:
  config = config_lib.load_config(ROOT / 'configs' / 'synthetic.py')
  config.data.source = source
  config.model.segment_len, config.model.num_segments = T, K
  task = config.data.task
  task.num_train, task.num_eval = 32, 16
  task.train_distances, task.eval_distances = (1, 2), (0, 1, 4)
  config.train.batch_size, config.train.eval_batches = 8, 2
  if tmp_path is not None:
    config.data.tfds_data_dir = str(tmp_path / 'tfds')
  return config


def _example(source: str, split: str, index: int, task=None) -> dict[str, np.ndarray]:
  task = task or _config(source=source).data.task
  return synthetic.make_example(source, task, T, K, split, index)


@pytest.mark.parametrize('source', SHORT_BLOCKS)
def test_deterministic_by_seed_split_and_index(source):
  first = _example(source, 'train', 5)
  again = _example(source, 'train', 5)
  np.testing.assert_array_equal(first['tokens'], again['tokens'])
  np.testing.assert_array_equal(first['answers'], again['answers'])
  others = [_example(source, 'validation', 5), _example(source, 'train', 6)]
  task = _config(source=source).data.task
  task.seed = 1
  others.append(_example(source, 'train', 5, task))
  for other in others:
    assert not np.array_equal(first['tokens'], other['tokens'])
  assert first['tokens'].dtype == np.int32 and first['tokens'].max() < 256


def _solve(source: str, tokens: np.ndarray, answers: np.ndarray) -> np.ndarray:
  """Reads every answer off the example's context (a reference solver)."""
  positions = np.flatnonzero(answers)
  if source in ('recall', 'induction'):
    # The cue (key / trigger) first occurs in the context, followed by its answer.
    return np.array([tokens[np.flatnonzero(tokens == tokens[p - 1])[0] + 1]
                     for p in positions])
  blocks = np.split(positions, np.flatnonzero(np.diff(positions) > 1) + 1)
  first_delim = np.flatnonzero(tokens == synthetic.DELIM)[0]
  if source == 'passkey':  # the digits after the context's DELIM
    key = tokens[first_delim + 1:first_delim + 1 + len(blocks[0])]
  else:  # copy: the region's symbols, in order, up to the first query's DELIM
    region = tokens[:first_delim]
    key = region[region != synthetic.BLANK]
  return np.concatenate([key[:len(b)] for b in blocks])


@pytest.mark.parametrize('source', SHORT_BLOCKS)
@pytest.mark.parametrize('split', ['train', 'distance_0', 'distance_4'])
def test_answers_recoverable_and_placed_by_distance(source, split):
  segments, distances = synthetic.split_layout('recall', _config().data.task, split, K)
  for index in range(4):
    example = _example(source, split, index)
    tokens, answers = example['tokens'], example['answers']
    assert len(tokens) == segments * T + 1
    np.testing.assert_array_equal(_solve(source, tokens, answers), tokens[answers])
    # An answer at p is predicted at input position p - 1, in a query block's segment.
    assert set(np.flatnonzero(answers[1:]) // T) == set(distances)


def test_recall_context_spread_over_segments():
  """context_segments = 2: the pairs open segments 0 and 1, and distance D counts from
  segment 1 (an evaluation row of 2 + D segments)."""
  task = _config().data.task
  task.num_pairs, task.context_segments = 8, 2
  assert synthetic.split_layout('recall', task, 'distance_1', K) == (3, (1,))
  assert synthetic.split_layout('passkey', task, 'distance_1', K) == (2, (1,))
  example = _example('recall', 'distance_1', 3, task)
  tokens, answers = example['tokens'], example['answers']
  assert len(tokens) == 3 * T + 1
  keys = tokens[[0, 2, 4, 6, T, T + 2, T + 4, T + 6]]  # four pairs open each segment
  assert len(set(keys)) == 8 and keys.max() < task.num_keys
  np.testing.assert_array_equal(_solve('recall', tokens, answers), tokens[answers])
  assert set(np.flatnonzero(answers[1:]) // T) == {2}
  task.train_distances = (0, 1, 2)
  with pytest.raises(DataError, match='after 2 context segments exceed'):
    synthetic.validate('recall', task, T, K)


@pytest.mark.parametrize('filler', synthetic.FILLERS)
def test_facts_ask_where_someone_last_went(filler):
  """Facts sentences open the two context segments, filler names nobody, and each
  question's answer token is the first byte of the last place its person went to."""
  task = _config(source='facts').data.task
  task.context_segments, task.train_distances, task.filler = 2, (0, 1), filler
  segment_len, segments = 256, 3
  synthetic.validate('facts', task, segment_len, segments)
  fact = re.compile(r'(\w+) (?:went|journeyed|moved|travelled) to the (\w+)\. ')
  question = re.compile(r'Where is (\w+)\? (\w+)\.')
  longest = max(len(f'Where is {p}? {q}.') for p in synthetic.PEOPLE for q in synthetic.PLACES)
  for split, index in [('train', 0), ('train', 1), ('distance_5', 2), ('validation', 3)]:
    example = synthetic.make_example('facts', task, segment_len, segments, split, index)
    text = bytes(example['tokens'].astype(np.uint8)).decode()
    row_segments, distances = synthetic.split_layout('facts', task, split, segments)
    assert len(text) == row_segments * segment_len + 1
    # Each context segment opens with its facts.
    facts = [m for s in range(2)
             for m in fact.finditer(text[s * segment_len:(s + 1) * segment_len])]
    assert all(fact.match(text, s * segment_len) for s in range(2))
    assert 2 <= len(facts) <= task.num_facts
    assert len(fact.findall(text)) == len(facts)  # no fact outside the context
    if filler == 'corpus':  # lines of the library's source
      assert any(code in text for code in ('def ', 'import ', 'return', ' = ', '('))
    last = {}
    for match in facts:
      last[match.group(1)] = match.group(2)
    asked = list(question.finditer(text))
    answers = np.flatnonzero(example['answers'])
    assert len(answers) == len(asked)
    blocks = {}  # each query block's questions, in the segment of its distance
    for match, position in zip(asked, answers):
      assert match.group(2) == last[match.group(1)]
      assert position == match.start(2)  # the place's first byte, one per question
      blocks.setdefault(position // segment_len, []).append(match)
    assert set(blocks) <= {1 + d for d in distances}
    # Each person named is asked once in the example (a second question could read the
    # first one's answer), up to num_queries a block.
    people = [match.group(1) for match in asked]
    assert len(people) == len(set(people)) == min(len(last), len(distances) * task.num_queries)
    for segment, block in blocks.items():
      assert len(block) <= task.num_queries
      # Every block has one length and ends its segment: where the questions start
      # must not tell how many people or which places (memory off read half the
      # answers off a place's length).
      assert text[(segment + 1) * segment_len - task.num_queries * longest:
                  block[0].start()].strip() == ''
      assert block[-1].start() == (segment + 1) * segment_len - longest
  assert len({place[0] for place in synthetic.PLACES}) == len(synthetic.PLACES)
  assert synthetic.chance_accuracy('facts', task) == 1 / len(synthetic.PLACES)
  task.context_segments = 1
  with pytest.raises(DataError, match='raise context_segments'):
    synthetic.validate('facts', task, segment_len, segments)
  task.context_segments, task.filler = 2, 'novels'
  with pytest.raises(DataError, match="filler='novels' is not one of sentences, corpus"):
    synthetic.validate('facts', task, segment_len, segments)
  task.filler, task.num_queries = 'sentences', 5
  with pytest.raises(DataError, match='need 1 <= num_queries <= 4'):
    synthetic.validate('facts', task, segment_len, segments)


def test_dialogue_asks_for_a_name_told_turns_before(tmp_path, monkeypatch):
  """Fact turns written with data.chat lie in the context segments and the assistant
  confirms each in the words of its answer, small talk names nobody, no turn is cut,
  and each question's answer token is the first letter of the name last told for its
  relation; a question lies in the segment of its distance, after the facts at
  distance 0. With data.chat.reply_room set no exchange crosses a segment boundary
  (facts open their segments, questions end theirs); without, blocks sit anywhere in
  their segments and boundaries fall inside turns. The builder takes the template
  from data.chat (another template is other data) and the generator's revision."""
  config = _config(tmp_path, source='dialogue')
  config.model.segment_len, config.model.num_segments = 256, 3
  task = config.data.task
  task.context_segments, task.train_distances, task.num_facts = 2, (0, 1), 4
  told = re.compile(r"User: my (\w+)'s name is (\w+)\.\nAssistant: [\w. ]+ Your \1 is \2\.\n")
  asked = re.compile(r"User: what is my (\w+)'s name\?\nAssistant: Your \1 is (\w+)\.\n")
  for reply_room in (0, 40):
    config.data.chat.reply_room = reply_room
    chat = builders.synthetic_config(config.data, 256, 3)
    settings = ml_collections.ConfigDict(chat.settings)
    assert settings.chat.to_dict() == config.data.chat.to_dict()
    starts, inside_turns = set(), 0
    for split, index in [('train', 0), ('train', 1), ('distance_5', 2), ('validation', 3)]:
      example = synthetic.make_example('dialogue', settings, 256, 3, split, index)
      text = bytes(example['tokens'].astype(np.uint8)).decode()
      lines = [line.lstrip(' ') for line in text.split('\n')[:-1]]  # no turn is cut
      assert all(line.startswith(('User: ', 'Assistant: ')[i % 2])
                 for i, line in enumerate(lines))
      in_parts = [list(told.finditer(text, part * 256, (part + 1) * 256)) for part in range(2)]
      facts = in_parts[0] + in_parts[1]
      assert all(in_parts) and 2 <= len(facts) <= task.num_facts
      assert len(told.findall(text)) == len(facts)  # none outside, none across a boundary
      last = {match.group(1): match.group(2) for match in facts}
      answers = np.flatnonzero(example['answers'])
      questions = list(asked.finditer(text))
      distances = (5,) if split == 'distance_5' else (0, 1)
      assert len(questions) == len(answers) == len(distances)
      for match, position, distance in zip(questions, answers, distances):
        assert match.group(2) == last[match.group(1)] and position == match.start(2)
        assert match.start() // 256 == (match.end() - 1) // 256 == 1 + distance
        assert match.start() >= facts[-1].end()
        starts.add(match.start() % 256)
      inside_turns += sum(text[b - 1] not in ' \n' for b in range(256, len(text) - 1, 256))
      if reply_room:
        assert all(told.match(text, part * 256) for part in range(2))
    assert (len(starts) > 1 and inside_turns >= 3) if not reply_room else (
        len(starts) == 1 and inside_turns == 0)
  assert len({name[0] for name in synthetic.NAMES}) == len(synthetic.NAMES)
  assert len({relation[-1] for relation in synthetic.RELATIONS}) == len(synthetic.RELATIONS)
  assert synthetic.chance_accuracy('dialogue', task) == 1 / len(synthetic.NAMES)
  monkeypatch.setitem(synthetic.REVISIONS, 'dialogue', synthetic.REVISIONS['dialogue'] + 1)
  assert builders.synthetic_config(config.data, 256, 3).name != chat.name  # built again
  monkeypatch.undo()
  config.data.chat.user = 'Q: '
  assert builders.synthetic_config(config.data, 256, 3).name != chat.name
  settings.num_facts = 6  # 3 facts a segment leave no room for a question after them
  with pytest.raises(DataError, match=r'context \(\d+\) \+ query \(\d+\) tokens exceed segment_len 256'):
    synthetic.validate('dialogue', settings, 256, 3)


def test_chance_accuracy():
  task = _config().data.task
  assert synthetic.chance_accuracy('recall', task) == 1 / task.num_values
  assert synthetic.chance_accuracy('passkey', task) == 0.1
  assert synthetic.chance_accuracy('copy', task) == 1 / task.num_symbols
  assert synthetic.chance_accuracy('induction', task) == 1 / (task.vocab - task.num_pairs)


@pytest.mark.parametrize('change, message', [
    ({'train_distances': (3,)}, 'train_distances'),
    ({'num_queries': 9}, 'num_queries'),
    ({'num_pairs': 20}, 'segment_len'),
    ({'num_keys': 190}, 'num_keys'),
])
def test_invalid_task_settings_fail_with_a_message(tmp_path, change, message):
  config = _config(tmp_path)
  config.data.task.update(change)
  with pytest.raises(DataError, match=message):
    builders.make_builder(config.data, T, K)


def test_builder_name_follows_settings(tmp_path):
  config = _config(tmp_path)
  name = builders.make_builder(config.data, T, K).builder_config.name
  assert builders.make_builder(config.data, T, K).builder_config.name == name
  config.data.task.num_values = 8
  assert builders.make_builder(config.data, T, K).builder_config.name != name
  assert builders.make_builder(config.data, T, 2 * K).builder_config.name != name
  config.data.task.passkey_len = 3  # not a recall setting: same data
  config.data.task.num_values = 16
  assert builders.make_builder(config.data, T, K).builder_config.name == name


def test_pipeline_reads_rows_with_answer_masks(tmp_path):
  config = _config(tmp_path)
  tokenizer = ByteTokenizer()
  train = pipeline.make_train_iterator(config, tokenizer)
  batch = next(train)
  assert batch['inputs'].shape == (8, T * K)
  state = train.get_state()
  expected = next(train)
  resumed = pipeline.make_train_iterator(config, tokenizer)
  resumed.set_state(state)
  np.testing.assert_array_equal(next(resumed)['inputs'], expected['inputs'])
  evaluation = list(pipeline.make_eval_iterator(config, tokenizer, 'distance_4'))
  assert len(evaluation) == 2 and evaluation[0]['inputs'].shape == (8, 5 * T)
  example = _example('recall', 'distance_4', 0)
  np.testing.assert_array_equal(evaluation[0]['inputs'][0], example['tokens'][:-1])
  np.testing.assert_array_equal(evaluation[0]['targets'][0], example['tokens'][1:])
  np.testing.assert_array_equal(evaluation[0]['mask'][0], example['answers'][1:])


def test_task_loss_all_trains_every_token_and_scores_the_answers(tmp_path):
  """data.task_loss='all': every token of a training row counts, in both layouts; an
  evaluation row still counts its answers only. Another value is one line."""
  config = _config(tmp_path)
  config.data.task_loss = 'all'
  tokenizer = ByteTokenizer()
  assert np.all(next(pipeline.make_train_iterator(config, tokenizer))['mask'] == 1)
  evaluation = next(iter(pipeline.make_eval_iterator(config, tokenizer, 'distance_4')))
  np.testing.assert_array_equal(evaluation['mask'][0],
                                _example('recall', 'distance_4', 0)['answers'][1:])
  config.data.layout, config.data.task.num_segments, config.model.num_segments = 'streams', K, 1
  batch = next(pipeline.make_train_iterator(config, tokenizer))
  assert np.all(batch['mask'][batch['doc_ids'] > 0][:-1] == 1)
  def eval_masks():
    batches = list(pipeline.make_eval_iterator(config, tokenizer, 'distance_4'))
    return np.stack([b['mask'] for b in batches]), np.stack([b['doc_ids'] for b in batches])
  scored, _ = eval_masks()
  config.data.task_loss = 'answers'
  answers, doc_ids = eval_masks()
  np.testing.assert_array_equal(scored, answers)
  assert 0 < answers.sum() < (doc_ids > 0).sum()
  config.data.task_loss = 'targets'
  with pytest.raises(DataError, match="data.task_loss='targets' is not one of answers, all"):
    pipeline.make_train_iterator(config, tokenizer)


@pytest.mark.parametrize('memory', [False, True])
def test_nothing_crosses_segments_without_memory(memory):
  """Memory off and no pointer cache: the answers' predictions D >= 1 segments later
  are bit-identical when the context segment is swapped for another example's. With
  memory on they change (the check can see a leak)."""
  model, _ = tiny_model(ByteTokenizer.vocab_size, segment_len=T, **{
      'memory.enabled': memory, 'pointer.cache_len': 0})
  params = init_params(model, seed=1)
  rows = [_example('recall', 'distance_4', i)['tokens'] for i in range(2)]
  swapped = rows[0].copy()
  swapped[:T] = rows[1][:T]
  assert not np.array_equal(swapped[:T], rows[0][:T])
  tokens = np.stack([rows[0], swapped])
  output = jax.jit(model.apply)(params, tokens[:, :-1])
  log_p = np.asarray(losses.token_log_probs(output, tokens[:, 1:])).reshape(2, -1)
  answers = _example('recall', 'distance_4', 0)['answers'][1:]
  beyond = answers & (np.arange(len(answers)) >= T)
  assert beyond.sum() > 0
  same = np.array_equal(log_p[0, beyond], log_p[1, beyond])
  assert same != memory


def test_a_passkey_stream_is_made_a_slice_at_a_time():
  """Any slicing gives the same row: the key after DELIM at the start, the query and
  its answers ending the last segment, filler text in between."""
  task = _config(source='passkey').data.task
  stream = synthetic.passkey_stream(task, T, 40, 0)
  whole = stream.tokens(0, stream.length)
  pieces = np.concatenate([stream.tokens(a, min(a + 7 * T + 3, stream.length))
                           for a in range(0, stream.length, 7 * T + 3)])
  np.testing.assert_array_equal(pieces, whole)
  assert whole[0] == synthetic.DELIM and whole[stream.answers[0] - 1] == synthetic.QUERY
  np.testing.assert_array_equal(whole[stream.answers], stream.key)
  np.testing.assert_array_equal(whole[1:1 + task.passkey_len], stream.key)
  assert stream.answers[-1] == 40 * T - 1  # the last answer ends segment 39
  filler = whole[1 + task.passkey_len:stream.answers[0] - 1]
  assert not np.isin(filler, synthetic._DIGITS).any()
  assert synthetic.passkey_stream(task, T, 40, 1).key.tolist() != stream.key.tolist() or (
      synthetic.passkey_stream(task, T, 40, 1).offset != stream.offset)


def test_in_the_streams_layout_an_example_runs_on_across_rows(tmp_path):
  """data.layout='streams': each example is a document of a stream, so rows shorter
  than it continue it from step to step, and its answers are what is trained."""
  config = _config(tmp_path)
  config.data.layout = 'streams'
  config.data.task.num_segments = K  # the examples: K segments; the rows: one
  config.model.num_segments = 1
  config_lib.validate(config, ByteTokenizer.vocab_size)
  train = pipeline.make_train_iterator(config, ByteTokenizer())
  batches = [next(train) for _ in range(K + 1)]
  row = {key: np.concatenate([b[key][0] for b in batches]) for key in batches[0]}
  first = row['doc_ids'] == 1
  assert first.sum() == K * T + 1  # the whole example, across K + 1 rows of T
  examples = [_example('recall', 'train', i) for i in range(32)]
  (example,) = [e for e in examples if np.array_equal(e['tokens'], row['inputs'][first])]
  np.testing.assert_array_equal(row['mask'][first][:-1], example['answers'][1:])
  assert row['mask'][first].sum() > 0


@pytest.mark.parametrize('distance,offset', [(0, 0), (3, 0), (1, 100)])
def test_facts_documents_are_the_distance_split_after_the_offset(distance, offset):
  """experiments/facts_long.py's documents: the distance split, one byte a token, after
  `offset` tokens of source that name nobody, in whole segments."""
  task = _config(source='facts').data.task
  task.context_segments, task.filler = 2, 'corpus'
  segment_len = 256
  tokens, answers = synthetic.facts_documents(task, segment_len, distance, 3, offset)
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
