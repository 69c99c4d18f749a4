"""A conversation with a trained dialogue model through memgpt-chat, recorded.

  python experiments/chat_transcript.py --workdir=DIR [--small_talk_turns=100]
      [--seed=0] [--out=experiments/results] [--name=chat_transcript]

The user tells the assistant two facts ("my sister's name is Ada"), makes small talk
for --small_talk_turns turns (the dialogue task's own small talk, in a random order
from --seed), then asks for both facts. The turns go to the real program
(`memgpt-chat --workdir=DIR --temperature=0`) on its standard input, one per line, as a
script sends them, and the replies are read from its standard output. Writes
<out>/<name>.md and .json: every turn and its reply, and how many tokens lie between
each fact and its question against the model's window; experiments/report.py shows
the conversation's start and end in the README.
"""

import pathlib
import subprocess
import sys

from absl import app
from absl import flags
import numpy as np

from memgpt_jax.chat import template_of
from memgpt_jax.data import synthetic
from memgpt_jax.data.tokenizer import make_tokenizer
from memgpt_jax.provenance import provenance, write_results
from memgpt_jax.training import workdir as workdir_lib
from report import chat_transcript_lines

ROOT = pathlib.Path(__file__).resolve().parents[1]
_WORKDIR = flags.DEFINE_string('workdir', None, 'A dialogue model (configs/chat.py).')
_SMALL_TALK_TURNS = flags.DEFINE_integer('small_talk_turns', 100,
                                         'Turns of small talk between the facts and the questions.')
_SEED = flags.DEFINE_integer('seed', 0, 'Order of the small talk.')
_OUT = flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
_NAME = flags.DEFINE_string('name', 'chat_transcript', 'Results file name.')
flags.mark_flag_as_required('workdir')

FACTS = (('sister', 'Ada'), ('cat', 'Hugo'))


def user_turns(small_talk_turns: int, seed: int) -> list[str]:
  """The facts, the small talk, then a question for each fact, last told first."""
  rng = np.random.default_rng(seed)
  talk = [synthetic.SMALL_TALK[i][0]
          for i in rng.integers(0, len(synthetic.SMALL_TALK), small_talk_turns)]
  return ([synthetic.told(relation, name) for relation, name in FACTS] + talk +
          [synthetic.asked(relation) for relation, _ in reversed(FACTS)])


def main(argv):
  del argv
  turns = user_turns(_SMALL_TALK_TURNS.value, _SEED.value)
  command = [sys.executable, '-m', 'memgpt_jax.cli.chat', f'--workdir={_WORKDIR.value}',
             '--temperature=0']
  result = subprocess.run(command, input='\n'.join(turns) + '\n', capture_output=True,
                          text=True, check=False, cwd=ROOT)
  if result.returncode:
    raise SystemExit(f'chat_transcript: memgpt-chat exited {result.returncode}: '
                     f'{result.stderr.strip().splitlines()[-1:]}')
  replies = result.stdout.splitlines()
  if len(replies) != len(turns):
    raise SystemExit(f'chat_transcript: {len(turns)} turns got {len(replies)} replies')
  config = workdir_lib.saved_config(_WORKDIR.value)
  template, tokenizer = template_of(config), make_tokenizer(config.data, _WORKDIR.value)
  lengths = [len(tokenizer.encode(template.exchange(turn, reply)))
             for turn, reply in zip(turns, replies)]
  asked = {relation: turns.index(synthetic.asked(relation)) for relation, _ in FACTS}
  facts = [{'relation': relation, 'name': name, 'told_at_turn': i + 1,
            'asked_at_turn': asked[relation] + 1, 'reply': replies[asked[relation]],
            'right': replies[asked[relation]].strip().startswith(
                synthetic.answered(relation) + name),
            'tokens_between': sum(lengths[i + 1:asked[relation]])}
           for i, (relation, name) in enumerate(FACTS)]
  report = {'name': _NAME.value, **provenance(), 'workdir': _WORKDIR.value,
            'window_tokens': config.model.segment_len, 'template': dict(config.data.chat),
            'turns': [{'user': t, 'assistant': r} for t, r in zip(turns, replies)],
            'facts': facts}
  table = '\n'.join([f'# A conversation through memgpt-chat: {_NAME.value}', '',
                     f'`{report["command"]}` at commit {report["commit"]}.', '',
                     *chat_transcript_lines(report, shown=len(turns))]) + '\n'
  write_results(_OUT.value, _NAME.value, report, table)
  print(table)


if __name__ == '__main__':
  app.run(main)
