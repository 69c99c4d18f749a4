"""memgpt-chat --workdir=DIR [--state_file=F] [--max_new_tokens=N --temperature=T ...]

Talks with a trained model turn by turn. Each reply streams as it is decoded; the
model's state (KV window, memory, pointer cache) carries from turn to turn, so the
conversation is not bounded by the attention window. The turn template is the model's
config's `data.chat.*`. In a terminal: /reset starts over, /save writes --state_file, /quit
(or Ctrl-D) leaves; Ctrl-C cuts a reply short. With standard input not a terminal, each
line is a user turn and each reply one line of output (scripts: `memgpt-chat
--workdir=DIR < turns.txt`). --state_file is read at start when it exists and written
on leaving.
"""

# pylint: disable=wrong-import-position; SIGTERM is answered before JAX is imported
from memgpt_jax.cli import signals
signals.exit_on_sigterm('memgpt-chat')

import pathlib
import sys

from absl import flags

from memgpt_jax import chat
from memgpt_jax import sampling
from memgpt_jax.cli.common import define_sampling_flags, flag_values, run_main
from memgpt_jax.errors import UserError

_WORKDIR = flags.DEFINE_string('workdir', None, 'A workdir written by memgpt-train.')
_STATE_FILE = flags.DEFINE_string(
    'state_file', None, 'The conversation\'s state: read at start when the file exists, '
    'written on leaving and by /save.')
_SAMPLING = define_sampling_flags('Most tokens of a reply.')
flags.mark_flag_as_required('workdir')

_HELP = ('/reset starts over, /save writes the state file, /quit or Ctrl-D leaves; Ctrl-C cuts '
         'a reply')


def _lines(interactive: bool):
  """(line number, text) of each user turn; a line that is not UTF-8 is refused with
  one line (in a terminal the conversation goes on, from a script it ends)."""
  number = 0
  while True:
    if interactive:
      sys.stdout.write('> ')
      sys.stdout.flush()
    try:
      line = sys.stdin.buffer.readline()
    except KeyboardInterrupt:
      sys.stdout.write(f'\n({_HELP})\n')
      continue
    if not line:
      return
    number += 1
    try:
      yield number, line.decode('utf-8').rstrip('\r\n')
    except UnicodeDecodeError as error:
      problem = (f'line {number} is not UTF-8 text ({error.reason} at byte {error.start}): '
                 'type it again')
      if not interactive:
        raise UserError(problem) from None
      print(f'memgpt-chat: error: {problem}', file=sys.stderr)


def main(argv):
  del argv
  settings = flag_values(_SAMPLING)
  decoder, tokenizer, config = sampling.load_decoder(_WORKDIR.value)
  sampling.check_settings(decoder.model.cfg.vocab_size,
                          **{k: v for k, v in settings.items() if k != 'seed'})
  sampling_settings = chat.Sampling(**settings)
  conversation = chat.Conversation(decoder, tokenizer, chat.template_of(config))
  state_file = pathlib.Path(_STATE_FILE.value) if _STATE_FILE.value else None
  if state_file is not None and state_file.exists():
    conversation.restore(state_file)
  interactive = sys.stdin.isatty()
  if interactive:
    resumed = f', {conversation.turns} turns restored' if conversation.turns else ''
    print(f'memgpt-chat: {_WORKDIR.value}{resumed}. {_HELP}.')
  try:
    for _, text in _lines(interactive):
      if text == '/quit':
        break
      if text == '/reset':
        conversation.reset()
        print('(started over)' if interactive else '')
      elif text == '/save' and state_file is None:
        if not interactive:
          raise UserError('/save needs --state_file=F')
        print('memgpt-chat: error: /save needs --state_file=F', file=sys.stderr)
      elif text == '/save':
        conversation.save(state_file)
        print(f'(saved to {state_file})' if interactive else '')
      else:
        conversation.reply(text, sampling_settings, sys.stdout)
  finally:
    if state_file is not None:
      conversation.save(state_file)


def run():
  run_main('memgpt-chat', main)


if __name__ == '__main__':
  run()
