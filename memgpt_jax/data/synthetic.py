"""Long-range synthetic tasks: seeded numpy generators of fixed-length token rows.

Every example has a context block at the start of segment 0 and query blocks at the
END of later segments: a query block at distance D sits in segment D (D = 0: after
the context, in the same segment). A recall context may span the first C =
task.context_segments segments (its pairs split evenly, each part at the start of its
segment), so the memory must accumulate it; distances then count from segment C - 1.
Between blocks lie distractor or filler tokens that carry no information about the
answers. Each example is
  tokens  int32 [N + 1]  byte-range ids (0..255), N = segments * segment_len
  answers bool  [N + 1]  True where the token is an answer (the loss counts only those)
Rows of a split have one length: training rows have `num_segments` segments and a
query block at each of task.train_distances; the evaluation split of distance D has
C + D segments and one query block, in segment C - 1 + D.

An example depends only on (task.seed, split, index): any machine, any order.
"""

import dataclasses
import zlib
from typing import Callable

import ml_collections
import numpy as np

from memgpt_jax.data.errors import DataError
from memgpt_jax.data.filler import corpus_text
from memgpt_jax.data.turns import Template

TASKS = ('recall', 'passkey', 'copy', 'induction', 'facts', 'dialogue')
# Settings every task has, then each task's own: the builder's name digests exactly
# these, so changing one rebuilds the data and nothing else does.
COMMON_FIELDS = ('seed', 'num_train', 'num_eval', 'train_distances', 'eval_distances')
TASK_FIELDS = {
    'recall': ('num_pairs', 'num_queries', 'num_keys', 'num_values', 'context_segments'),
    'passkey': ('passkey_len',),
    'copy': ('copy_tokens', 'copy_region', 'num_symbols'),
    'induction': ('num_pairs', 'num_queries', 'vocab'),
    'facts': ('num_facts', 'num_queries', 'context_segments', 'filler'),
    # 'chat' is data.chat, the turn template (builders.synthetic_config puts it here).
    'dialogue': ('num_facts', 'context_segments', 'chat'),
}
# A task's data revision (1 where not named), digested into its builder's name: raised
# when its generator writes other examples for the same settings, so that data built
# before is built again (and experiments/ablate.py keeps no result trained on it).
REVISIONS = {'dialogue': 3, 'facts': 2}
# Marker ids sit above every task's content ids (content uses ids < 200).
QUERY, DELIM, BLANK = 250, 251, 252
_FILLER_TEXT = np.frombuffer(
    b'The grass is green. The sky is blue. The sun is yellow. Here we go. '
    b'There and back again. ', np.uint8).astype(np.int32)
_DIGITS = np.arange(ord('0'), ord('9') + 1, dtype=np.int32)
_SPLIT_IDS = {'train': 0, 'validation': 1, 'test': 2}


@dataclasses.dataclass
class Blocks:
  """One example's parts: the context (one part per context segment), one query block
  per distance, filler. The parts open (context) and end (queries) their segments, and
  the filler runs through the row under them; or, `whole_gaps`, it fills each gap's
  share of each segment on its own (filler(n): whole turns padded to n), so that no
  turn is cut or crosses a segment boundary. `across_segments`: the parts sit anywhere
  in their segments and the turns of a gap run on across its boundaries."""
  context: list[np.ndarray]
  queries: list[np.ndarray]
  query_answers: list[np.ndarray]
  filler: Callable[[int], np.ndarray]
  whole_gaps: bool = False
  across_segments: bool = False


# The facts task, in the shape of BABILong's single-supporting-fact questions: who went
# where, in sentences; asked where someone is, the last place they went is the answer.
# The places start with different letters, so that byte names the place: it is the
# answer token (exact match of the word).
PEOPLE = ('Mary', 'John', 'Sandra', 'Daniel')
PLACES = ('kitchen', 'garden', 'office', 'hallway', 'bathroom', 'cellar')
_MOVES = ('went to', 'journeyed to', 'moved to', 'travelled to')
# The facts' filler (data.task.filler): these sentences, or lines of the standard
# library's source (memgpt_jax/data/filler.py).
FILLERS = ('sentences', 'corpus')
# Filler sentences, subject + verb + object: none names a person or a place.
_SUBJECTS = ('The old clock', 'A quiet river', 'The morning train', 'Every lamp',
             'The tall fence', 'A paper boat', 'The busy market')
_VERBS = ('stood near', 'looked like', 'waited for', 'leaned on', 'shone over',
          'drifted past')
_OBJECTS = ('the bridge', 'a red door', 'the empty square', 'the last page',
            'a stone wall', 'the harbor lights')
_FILLER_SENTENCES = [np.frombuffer(f'{s} {v} {o}. '.encode(), np.uint8).astype(np.int32)
                     for s in _SUBJECTS for v in _VERBS for o in _OBJECTS]
_LONGEST_FACT = max(len(f'{p} {m} the {q}. ') for p in PEOPLE for m in _MOVES for q in PLACES)
# Every query block is this long (spaces after the place): a block ends its segment, so
# a place's length would otherwise show in where the question starts (a leak).
_QUERY_LEN = max(len(f'Where is {p}? {q}.') for p in PEOPLE for q in PLACES)


# The dialogue task: a user tells the assistant who someone is ("my sister's name is
# Ada"), the assistant confirms it ("Noted. Your sister is Ada."), small talk follows,
# and many turns later the user asks ("what is my sister's name?"): the reply is the
# confirmation's sentence again. The names start with different letters: the first
# letter of the name in the reply is the answer. The relations end in different letters,
# so the token four before the name ("sister is A") tells which was asked, as the
# name's first letter tells which name: a byte-level model finds both at one offset.
RELATIONS = ('sister', 'friend', 'cat', 'boss', 'niece', 'dog')
NAMES = ('Ada', 'Bruno', 'Clara', 'Dmitri', 'Elena', 'Farid', 'Greta', 'Hugo')
_ACKNOWLEDGEMENTS = ('Noted.', 'Got it.', 'Sure.', 'OK.')


def told(relation: str, name: str) -> str:
  """A user's turn that tells a name."""
  return f"my {relation}'s name is {name}."


def asked(relation: str) -> str:
  """A user's turn that asks for it."""
  return f"what is my {relation}'s name?"


def answered(relation: str) -> str:
  """The assistant's reply up to the name (the answer token follows), both when told
  and when asked: the name follows the same words in both."""
  return f'Your {relation} is '


# Small talk: no turn names a relation or a name.
SMALL_TALK = (('how are you today?', 'I am well, thanks.'),
               ('it is raining again.', 'Rain is good for the garden.'),
               ('I had coffee this morning.', 'Coffee helps.'),
               ('what a long week.', 'The weekend is close.'),
               ('tell me something nice.', 'The sun rises every day.'),
               ('the train was late.', 'That happens.'),
               ('I read a book last night.', 'Reading is a good habit.'),
               ('let us talk later.', 'Any time.'))


def _bytes(text: str) -> np.ndarray:
  return np.frombuffer(text.encode(), np.uint8).astype(np.int32)


# Why a task needs answer tokens: without them nothing is trained or scored.
_ANSWERS_ONLY = 'the loss and accuracy count answer tokens only'


def _check(condition: bool, message: str):
  if not condition:
    raise DataError(f'data.task: {message}')


def _recall(task, rng: np.random.Generator, num_blocks: int) -> Blocks:
  """k1 v1 .. kP vP (over context_segments parts); each query block asks num_queries
  distinct keys: ? k v."""
  keys = rng.choice(task.num_keys, task.num_pairs, replace=False)
  values = task.num_keys + rng.integers(0, task.num_values, task.num_pairs)
  pairs = np.stack([keys, values], 1)
  context = [part.reshape(-1) for part in np.array_split(pairs, task.context_segments)]
  distractor_low = task.num_keys + task.num_values
  queries, answers = [], []
  for _ in range(num_blocks):
    asked = rng.choice(task.num_pairs, task.num_queries, replace=False)
    block = np.stack([np.full(task.num_queries, QUERY), keys[asked], values[asked]], 1)
    queries.append(block.reshape(-1))
    answers.append(np.tile([False, False, True], task.num_queries))
  return Blocks(context, queries, answers,
                lambda n: rng.integers(distractor_low, 200, n))


def _passkey(task, rng: np.random.Generator, num_blocks: int) -> Blocks:
  """DELIM d1..dL hidden in filler text; each query block is QUERY d1..dL."""
  key = rng.choice(_DIGITS, task.passkey_len)
  context = np.concatenate([[DELIM], key])
  query = np.concatenate([[QUERY], key])
  answers = np.concatenate([[False], np.ones(task.passkey_len, bool)])

  def filler(n: int) -> np.ndarray:
    start = rng.integers(len(_FILLER_TEXT))
    return np.resize(np.roll(_FILLER_TEXT, -start), n)
  return Blocks([context], [query] * num_blocks,
                [answers] * num_blocks, filler)


def _copy(task, rng: np.random.Generator, num_blocks: int) -> Blocks:
  """copy_tokens symbols scattered among BLANKs; each query block is DELIM s1..sn."""
  symbols = rng.integers(0, task.num_symbols, task.copy_tokens)
  context = np.full(task.copy_region, BLANK)
  context[np.sort(rng.choice(task.copy_region, task.copy_tokens, replace=False))] = symbols
  query = np.concatenate([[DELIM], symbols])
  answers = np.concatenate([[False], np.ones(task.copy_tokens, bool)])
  return Blocks([context], [query] * num_blocks,
                [answers] * num_blocks, lambda n: np.full(n, BLANK))


def _induction(task, rng: np.random.Generator, num_blocks: int) -> Blocks:
  """A random sequence with bigrams A_i B_i; the A_i occur nowhere else; later A_i -> B_i."""
  triggers = rng.choice(task.vocab, task.num_pairs, replace=False)
  others = np.setdiff1d(np.arange(task.vocab), triggers)
  successors = rng.choice(others, task.num_pairs)
  filler = lambda n: rng.choice(others, n)
  context = np.stack([filler(task.num_pairs), triggers, successors], 1).reshape(-1)
  queries, answers = [], []
  for _ in range(num_blocks):
    asked = rng.choice(task.num_pairs, task.num_queries, replace=False)
    block = np.stack([filler(task.num_queries), triggers[asked], successors[asked]], 1)
    queries.append(block.reshape(-1))
    answers.append(np.tile([False, False, True], task.num_queries))
  return Blocks([context], queries, answers, filler)


def _facts(task, rng: np.random.Generator, num_blocks: int) -> Blocks:
  """2 to num_facts sentences 'Mary went to the kitchen.' (over context_segments parts);
  each person they name is asked once in the example ('Where is Mary? kitchen.'), in
  one of its query blocks, up to num_queries a block (spaces after each question, and
  before the block's first where it has fewer: every block has one length); the answer
  is the last place that person went (its first byte is the answer token). Asked twice,
  the later question could be answered from the earlier one's answer instead of the
  facts (a training row holds several blocks)."""
  count = int(rng.integers(min(2, task.num_facts), task.num_facts + 1))
  people = rng.integers(0, len(PEOPLE), count)
  places = rng.integers(0, len(PLACES), count)
  moves = rng.integers(0, len(_MOVES), count)
  sentences = [_bytes(f'{PEOPLE[p]} {_MOVES[m]} the {PLACES[q]}. ')
               for p, q, m in zip(people, places, moves)]
  parts = np.array_split(np.arange(count), task.context_segments)
  context = [np.concatenate([sentences[i] for i in part] or [np.zeros(0, np.int32)])
             for part in parts]
  last_place = {int(p): int(q) for p, q in zip(people, places)}  # later facts override
  blocks = [[] for _ in range(num_blocks)]  # dealt from a random block on, in turn
  first = int(rng.integers(num_blocks))
  for turn, person in enumerate(rng.permutation(sorted(last_place))):
    block = blocks[(first + turn) % num_blocks]
    if len(block) < task.num_queries:
      block.append(person)
  queries, answers = [], []
  for asked in blocks:
    query = [_spaces(_QUERY_LEN * (task.num_queries - len(asked)))]
    answer = [np.zeros(len(query[0]), bool)]
    for person in asked:
      question = _bytes(f'Where is {PEOPLE[person]}? ')
      query.append(np.concatenate([question, _bytes(
          f'{PLACES[last_place[person]]}.'.ljust(_QUERY_LEN - len(question)))]))
      answer.append(np.arange(_QUERY_LEN) == len(question))
    queries.append(np.concatenate(query))
    answers.append(np.concatenate(answer))

  def filler(n: int) -> np.ndarray:
    if task.filler == 'corpus':
      return corpus_text(rng, n, PEOPLE + PLACES)
    chosen = rng.integers(0, len(_FILLER_SENTENCES), n // 20 + 1)  # sentences >= 20 bytes
    return np.concatenate([_FILLER_SENTENCES[i] for i in chosen])[:n]
  return Blocks(context, queries, answers, filler)


def _dialogue_lengths(chat: Template) -> tuple[int, int]:
  """(the longest fact turn, every query block's length) in tokens (bytes)."""
  fact = max(len(chat.exchange(told(r, n), f'{a} {answered(r)}{n}.').encode())
             for r in RELATIONS for n in NAMES for a in _ACKNOWLEDGEMENTS)
  query = max(len(chat.exchange(asked(r), f'{answered(r)}{n}.').encode())
              for r in RELATIONS for n in NAMES)
  return fact, query


def _dialogue(task, rng: np.random.Generator, num_blocks: int) -> Blocks:
  """2 to num_facts turns 'User: my sister's name is Ada. Assistant: Noted. Your sister
  is Ada.' (over context_segments parts; a later turn about the same relation
  overrides); whole small-talk turns fill the gaps (spaces after the last that fits);
  each query block asks about a relation told: 'User: what is my sister's name?
  Assistant: Your sister is Ada.' (spaces after it: every block has one length), the
  first letter of the name its answer token. Turns are written with task.chat, each
  exchange inside one segment where its reply_room is set (make_example)."""
  chat = Template(**task.chat)
  count = int(rng.integers(min(2, task.num_facts), task.num_facts + 1))
  relations = rng.integers(0, len(RELATIONS), count)
  names = rng.integers(0, len(NAMES), count)
  acks = rng.integers(0, len(_ACKNOWLEDGEMENTS), count)
  turns = [_bytes(chat.exchange(told(RELATIONS[r], NAMES[n]),
                                f'{_ACKNOWLEDGEMENTS[a]} {answered(RELATIONS[r])}{NAMES[n]}.'))
           for r, n, a in zip(relations, names, acks)]
  parts = np.array_split(np.arange(count), task.context_segments)
  context = [np.concatenate([turns[i] for i in part] or [np.zeros(0, np.int32)])
             for part in parts]
  named = {int(r): int(n) for r, n in zip(relations, names)}  # later turns override
  _, query_len = _dialogue_lengths(chat)
  queries, answers = [], []
  for _ in range(num_blocks):
    relation = int(rng.choice(sorted(named)))
    question = _bytes(chat.user_turn(asked(RELATIONS[relation])))
    lead = _bytes(answered(RELATIONS[relation]))
    reply = _bytes(f'{NAMES[named[relation]]}.{chat.end_of_turn}')
    padding = _spaces(query_len - len(question) - len(lead) - len(reply))
    queries.append(np.concatenate([question, lead, reply, padding]))
    answer = np.zeros(len(queries[-1]), bool)
    answer[len(question) + len(lead)] = True
    answers.append(answer)
  small_talk = [_bytes(chat.exchange(u, a)) for u, a in SMALL_TALK]

  def filler(n: int) -> np.ndarray:
    """Whole small-talk turns, then spaces up to n tokens."""
    turns, used = [], 0
    while used + len(turn := small_talk[rng.integers(0, len(small_talk))]) <= n:
      turns.append(turn)
      used += len(turn)
    return np.concatenate(turns + [_spaces(n - used)])
  return Blocks(context, queries, answers, filler, whole_gaps=True,
                across_segments=not chat.reply_room)


def _spaces(n: int) -> np.ndarray:
  return np.full(n, ord(' '), np.int32)


_GENERATORS = {'recall': _recall, 'passkey': _passkey, 'copy': _copy,
               'induction': _induction, 'facts': _facts, 'dialogue': _dialogue}


def chance_accuracy(task_name: str, task: ml_collections.ConfigDict) -> float:
  """The best accuracy without the context: answers are uniform over an alphabet.

  For induction the successors are uniform over the ids that are no trigger, so no
  guess beats 1 / (vocab - num_pairs) (an upper bound: the triggers are unknown).
  """
  alphabet = {'recall': lambda: task.num_values, 'passkey': lambda: len(_DIGITS),
              'copy': lambda: task.num_symbols,
              'induction': lambda: task.vocab - task.num_pairs,
              'facts': lambda: len(PLACES), 'dialogue': lambda: len(NAMES)}
  return 1.0 / alphabet[task_name]()


def task_settings(task_name: str, task: ml_collections.ConfigDict) -> dict:
  """The settings that define the task's data (JSON-able, in a fixed order)."""
  if task_name not in TASKS:
    raise DataError(f'unknown synthetic task {task_name!r} (choose {", ".join(TASKS)})')
  settings = {}
  for field in COMMON_FIELDS + TASK_FIELDS[task_name]:
    if field not in task:
      raise DataError(f'data.task.{field} is missing (task {task_name!r})')
    value = task[field]
    if isinstance(value, ml_collections.ConfigDict):
      value = value.to_dict()
    settings[field] = [int(v) for v in value] if isinstance(value, (tuple, list)) else value
  return settings


def validate(task_name: str, task: ml_collections.ConfigDict, segment_len: int,
             num_segments: int):
  """DataError naming the first setting that cannot make a well-formed example."""
  task_settings(task_name, task)
  _check(task.num_train > 0 and task.num_eval > 0, 'num_train and num_eval must be >= 1')
  _check(len(task.train_distances) > 0, 'train_distances is empty')
  _check(all(0 <= d < num_segments for d in task.train_distances),
         f'train_distances {tuple(task.train_distances)} must lie in [0, {num_segments})')
  _check(len(set(task.train_distances)) == len(task.train_distances),
         'train_distances repeat')
  _check(all(d >= 0 for d in task.eval_distances), 'eval_distances must be >= 0')
  if task_name in ('recall', 'induction'):
    _check(1 <= task.num_queries <= task.num_pairs, 'need 1 <= num_queries <= num_pairs')
  if task_name == 'facts':
    _check(1 <= task.num_queries <= len(PEOPLE),
           f'need 1 <= num_queries <= {len(PEOPLE)}: a block asks each person once')
  if task_name == 'recall':
    _check(task.num_pairs <= task.num_keys, 'num_pairs > num_keys')
    _check(1 <= task.context_segments <= task.num_pairs,
           'need 1 <= context_segments <= num_pairs')
    _check(all(task.context_segments - 1 + d < num_segments for d in task.train_distances),
           f'train_distances {tuple(task.train_distances)} after {task.context_segments} '
           f'context segments exceed num_segments {num_segments}')
    _check(task.num_values >= 1, 'num_values must be >= 1: every key is answered by a value')
    _check(task.num_keys + task.num_values < 200, 'num_keys + num_values must be < 200')
  if task_name == 'induction':
    _check(task.num_pairs + 2 <= task.vocab <= 200, 'need num_pairs + 2 <= vocab <= 200')
  if task_name == 'facts':
    _check(task.filler in FILLERS, f'filler={task.filler!r} is not one of {", ".join(FILLERS)}')
  if task_name in ('facts', 'dialogue'):
    _check(1 <= task.context_segments <= task.num_facts,
           'need 1 <= context_segments <= num_facts')
    longest = (_LONGEST_FACT if task_name == 'facts'
               else _dialogue_lengths(Template(**task.chat))[0])
    most = -(-task.num_facts // task.context_segments) * longest
    _check(most <= segment_len, f'{task.num_facts} facts over {task.context_segments} '
           f'context segments take up to {most} tokens a segment, over segment_len '
           f'{segment_len}: raise context_segments')
    _check(all(task.context_segments - 1 + d < num_segments for d in task.train_distances),
           f'train_distances {tuple(task.train_distances)} after {task.context_segments} '
           f'context segments exceed num_segments {num_segments}')
  if task_name == 'passkey':
    _check(task.passkey_len >= 1,
           f'passkey_len must be >= 1: its digits are the answers and {_ANSWERS_ONLY}')
  if task_name == 'copy':
    _check(task.copy_tokens >= 1,
           f'copy_tokens must be >= 1: the copied symbols are the answers and {_ANSWERS_ONLY}')
    _check(task.copy_tokens <= task.copy_region, 'copy_tokens > copy_region')
    _check(1 <= task.num_symbols <= 200, 'need 1 <= num_symbols <= 200')
  blocks = _GENERATORS[task_name](task, np.random.default_rng(0), 1)
  context, query = max(len(part) for part in blocks.context), len(blocks.queries[0])
  if task_name in ('facts', 'dialogue'):
    context = most  # the longest a part can be, not this sample's: a query must not cover a fact
  _check(context + query <= segment_len or 0 not in tuple(task.train_distances) + tuple(
      task.eval_distances), f'context ({context}) + query ({query}) tokens exceed '
         f'segment_len {segment_len} at distance 0')
  _check(max(context, query) <= segment_len,
         f'a block ({max(context, query)} tokens) exceeds segment_len {segment_len}')


def eval_split(distance: int) -> str:
  return f'distance_{distance}'


def split_names(task: ml_collections.ConfigDict) -> list[str]:
  return list(_SPLIT_IDS) + [eval_split(d) for d in task.eval_distances]


def _split_id(split: str) -> int:
  if split in _SPLIT_IDS:
    return _SPLIT_IDS[split]
  return 1000 + int(split.removeprefix('distance_'))


def split_size(task: ml_collections.ConfigDict, split: str) -> int:
  return task.num_train if split == 'train' else task.num_eval


def split_layout(task_name: str, task: ml_collections.ConfigDict, split: str,
                 num_segments: int) -> tuple[int, tuple[int, ...]]:
  """(segments per row, distances of the query blocks) of a split's rows."""
  if split in _SPLIT_IDS:
    return num_segments, tuple(sorted(task.train_distances))
  distance = int(split.removeprefix('distance_'))
  return context_segments(task_name, task) + distance, (distance,)


def context_segments(task_name: str, task: ml_collections.ConfigDict) -> int:
  """Segments the context of an example spans: distances count from its last."""
  return task.context_segments if task_name in ('recall', 'facts', 'dialogue') else 1


@dataclasses.dataclass(frozen=True)
class PasskeyStream:
  """A passkey row of any length, made a slice at a time (a row of a million tokens is
  never held whole): DELIM d1..dL at the start, filler text, QUERY d1..dL ending the
  last segment, as make_example lays out the distance split of `segments - 1`."""
  key: np.ndarray  # [passkey_len] the digits
  offset: int  # where in the filler text the row starts
  length: int  # N + 1 tokens

  @property
  def answers(self) -> np.ndarray:
    """Positions of the answers (the query's digits) in the row."""
    return np.arange(self.length - 1 - len(self.key), self.length - 1)

  def tokens(self, start: int, stop: int) -> np.ndarray:
    """Tokens start .. stop - 1 of the row, int32."""
    positions = np.arange(start, stop)
    tokens = _FILLER_TEXT[(self.offset + positions) % len(_FILLER_TEXT)]
    context = np.concatenate([[DELIM], self.key])
    query_start = self.length - 2 - len(self.key)
    query = np.concatenate([[QUERY], self.key])
    for begin, block in ((0, context), (query_start, query)):
      inside = (positions >= begin) & (positions < begin + len(block))
      tokens = np.where(inside, block[np.clip(positions - begin, 0, len(block) - 1)], tokens)
    return tokens.astype(np.int32)


def passkey_stream(task: ml_collections.ConfigDict, segment_len: int, segments: int,
                   index: int) -> PasskeyStream:
  """Example `index` of the long passkey rows of `segments` segments (own seeds)."""
  rng = np.random.default_rng([task.seed, zlib.crc32(b'passkey_stream'), segments, index])
  return PasskeyStream(key=rng.choice(_DIGITS, task.passkey_len),
                       offset=int(rng.integers(len(_FILLER_TEXT))),
                       length=segments * segment_len + 1)


def facts_documents(task: ml_collections.ConfigDict, segment_len: int, distance: int, rows: int,
                    offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(tokens uint8 [rows, S * segment_len + 1], answers bool [the same]) of the first
  `rows` documents of the facts task's distance split, each after `offset` tokens of
  the source (the document then starts `offset` tokens into a segment; spaces fill the
  last): the evaluation of experiments/facts_long.py, far past what TFDS should hold."""
  split = eval_split(distance)
  segments, _ = split_layout('facts', task, split, 0)
  length = offset + segments * segment_len + 1
  padded = -(-(length - 1) // segment_len) * segment_len + 1
  tokens = np.full((rows, padded), ord(' '), np.uint8)
  answers = np.zeros((rows, padded), bool)
  for index in range(rows):
    example = make_example('facts', task, segment_len, 0, split, index)
    if offset:
      tokens[index, :offset] = corpus_text(np.random.default_rng([offset, index]), offset,
                                           PEOPLE + PLACES)
    tokens[index, offset:length] = example['tokens']
    answers[index, offset:length] = example['answers']
  return tokens, answers


def make_example(task_name: str, task: ml_collections.ConfigDict, segment_len: int,
                 num_segments: int, split: str, index: int) -> dict[str, np.ndarray]:
  """Example `index` of `split`: {'tokens': int32 [N+1], 'answers': bool [N+1]}."""
  segments, distances = split_layout(task_name, task, split, num_segments)
  seed = [task.seed, zlib.crc32(task_name.encode()), _split_id(split), index]
  rng = np.random.default_rng(seed)
  blocks = _GENERATORS[task_name](task, rng, len(distances))
  length = segments * segment_len + 1
  tokens = np.zeros(length, np.int32) if blocks.whole_gaps else np.asarray(
      blocks.filler(length), np.int32)
  answers, written = np.zeros(length, bool), np.zeros(length, bool)
  starts, ends = _places(blocks, distances, segment_len, rng)
  for start, part in zip(starts, blocks.context):
    tokens[start:start + len(part)] = part
    written[start:start + len(part)] = True
  for end, query, answer in zip(ends, blocks.queries, blocks.query_answers):
    tokens[end - len(query):end] = query
    answers[end - len(query):end] = answer
    written[end - len(query):end] = True
  if blocks.whole_gaps:
    edges = np.flatnonzero(np.diff(np.concatenate([[True], written, [True]]).astype(np.int8)))
    for start, stop in zip(edges[::2], edges[1::2]):  # each run of unwritten tokens
      boundaries = [] if blocks.across_segments else range(
          -(-start // segment_len) * segment_len, stop, segment_len)
      cuts = sorted({start, stop, *boundaries})
      for begin, end in zip(cuts, cuts[1:]):
        tokens[begin:end] = blocks.filler(end - begin)
  return {'tokens': tokens, 'answers': answers}


def _places(blocks: Blocks, distances: tuple[int, ...], segment_len: int,
            rng: np.random.Generator) -> tuple[list[int], list[int]]:
  """(where each context part starts, where each query block ends): context segment s
  holds part s, the query at distance d is in the d-th segment after the last part's
  (at distance 0 after the part). Turns across segments: drawn anywhere they fit."""
  last = len(blocks.context) - 1
  starts, ends = [], []
  for segment, part in enumerate(blocks.context):
    after = len(blocks.queries[distances.index(0)]) if segment == last and 0 in distances else 0
    room = segment_len - len(part) - after
    starts.append(segment * segment_len + (int(rng.integers(0, room + 1))
                                           if blocks.across_segments else 0))
  for distance, query in zip(distances, blocks.queries):
    begin = (last + distance) * segment_len
    lowest = (starts[last] + len(blocks.context[last]) if distance == 0 else begin) + len(query)
    end = begin + segment_len
    ends.append(int(rng.integers(lowest, end + 1)) if blocks.across_segments else end)
  return starts, ends
