"""memgpt-chat: the state carried from turn to turn equals reading the whole
conversation at once, a saved conversation goes on where it was and belongs to its
model, and the real program driven through a pseudo-terminal and through a pipe."""

import io
import os
import pty
import select
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import ROOT, trained_on_text
from memgpt_jax import chat, sampling
from memgpt_jax.errors import UserError



def sampled(**changes) -> chat.Sampling:
  """Greedy replies of at most 20 tokens, unless `changes` say otherwise."""
  return chat.Sampling(**({'max_new_tokens': 20, 'temperature': 0.0, 'top_k': 0,
                           'top_p': 1.0, 'seed': 0} | changes))


GREEDY = sampled()


@pytest.fixture(scope='module')
def workdir(data_dir, tmp_path_factory):
  return trained_on_text(data_dir, tmp_path_factory.mktemp('chat'))


def conversation(workdir) -> chat.Conversation:
  decoder, tokenizer, config = sampling.load_decoder(workdir)
  return chat.Conversation(decoder, tokenizer, chat.template_of(config))


@pytest.mark.parametrize('reply_room', [0, 1])
def test_turns_carry_the_state_of_reading_the_conversation_at_once(workdir, reply_room):
  """Turns, the replies cut at end-of-turn or at max_new_tokens: the state after them
  (memory, window, pointer cache) and the next token's distribution equal those of
  feeding the whole transcript's tokens in one call. With data.chat.reply_room, spaces
  fill the segment before a user's turn that would not fit in it with that many
  tokens of reply: the transcript holds them too."""
  decoder, tokenizer, config = sampling.load_decoder(workdir)
  template = chat.template_of(config)
  if reply_room:  # turns short enough to fit a segment of the tiny model's 8 tokens
    template = chat.Template('U:', 'A:', template.end_of_turn, reply_room)
  talk = chat.Conversation(decoder, tokenizer, template)
  segment_len, transcript, padded = decoder.model.cfg.segment_len, [], 0
  for text, tokens in (('hello there', 20), ('what is x?', 7), ('and y', 33), ('a', 1),
                       ('b', 3)):
    reply = talk.reply(text, sampled(max_new_tokens=tokens, temperature=0.8, seed=1),
                       io.StringIO())
    turn = tokenizer.encode(template.user_turn(text))
    used = len(transcript) % segment_len
    if reply_room and used and used + len(turn) + reply_room > segment_len:
      transcript += list(tokenizer.encode(' ' * (segment_len - used)))
      padded += 1
    transcript += [*turn, *reply.tokens, *tokenizer.encode(template.end_of_turn)]
  assert talk.turns == 5 and (padded > 0) == (reply_room > 0)
  log_probs, state = decoder.prefill(decoder.start(1), np.asarray([transcript], np.int32))
  got_state, got_log_probs = talk.state()
  assert got_state.position == state.position
  np.testing.assert_allclose(got_log_probs, log_probs, atol=2e-4)
  for got, want in zip(jax.tree.leaves((got_state.memory, live(got_state))),
                       jax.tree.leaves((state.memory, live(state))), strict=True):
    np.testing.assert_allclose(got, want, atol=2e-4)


def live(state):
  """The window's buffers up to the segment's current position: decoding leaves older
  entries past it, which masks hide (prefill starts each segment empty)."""
  window, position = state.window, state.position
  head = lambda axis: (lambda x: np.take(np.asarray(x), np.arange(position), axis=axis))
  return window.replace(keys=jax.tree.map(head(2), window.keys),
                        values=jax.tree.map(head(2), window.values),
                        **{name: jax.tree.map(head(1), getattr(window, name))
                           for name in ('hiddens', 'pointer_keys', 'tokens', 'docs', 'prefix')})


def test_a_saved_conversation_goes_on_where_it_was(workdir, tmp_path):
  talk = conversation(workdir)
  talk.reply('my name is Ada', GREEDY, io.StringIO())
  talk.save(tmp_path / 'state.npz')
  going_on = talk.reply('what is my name?', GREEDY, io.StringIO())
  restored = conversation(workdir)
  restored.restore(tmp_path / 'state.npz')
  assert restored.turns == 1
  assert restored.reply('what is my name?', GREEDY, io.StringIO()).tokens == going_on.tokens
  restored.reset()
  assert restored.turns == 0 and restored.state()[1] is None


def test_a_state_of_another_model_or_no_state_is_refused_in_one_line(workdir, tmp_path):
  talk = conversation(workdir)
  talk.reply('hi', GREEDY, io.StringIO())
  talk.save(tmp_path / 'state.npz')
  decoder, tokenizer, config = sampling.load_decoder(workdir)
  decoder.params = jax.tree.map(lambda x: x + 1, decoder.params)
  other = chat.Conversation(decoder, tokenizer, chat.template_of(config))
  with pytest.raises(UserError, match='holds a conversation with another model') as refused:
    other.restore(tmp_path / 'state.npz')
  (tmp_path / 'junk').write_bytes(b'not a state')
  with pytest.raises(UserError, match='is not a saved conversation') as junk:
    other.restore(tmp_path / 'junk')
  for error in (refused, junk):
    assert '\n' not in str(error.value)


def test_an_end_of_turn_of_several_tokens_or_no_room_for_a_reply_is_refused(workdir):
  decoder, tokenizer, _ = sampling.load_decoder(workdir)
  with pytest.raises(UserError, match=r"data.chat.end_of_turn '\\n\\n' is 2 tokens"):
    chat.Conversation(decoder, tokenizer, chat.Template('U: ', 'A: ', '\n\n'))
  with pytest.raises(UserError, match=r'data.chat.reply_room=8 needs .* a segment of 8 tokens'):
    chat.Conversation(decoder, tokenizer, chat.Template('U: ', 'A: ', '\n', 8))


def _program(workdir, *flags) -> list[str]:
  return [sys.executable, '-m', 'memgpt_jax.cli.chat', f'--workdir={workdir}',
          '--temperature=0', '--max_new_tokens=12', *flags]


def _read_until(fd: int, wanted: bytes, seen: bytearray, timeout: float = 120):
  deadline = time.time() + timeout
  while wanted not in seen:
    assert time.time() < deadline, bytes(seen)
    if select.select([fd], [], [], 1)[0]:
      seen.extend(os.read(fd, 4096))


def test_the_program_in_a_terminal_talks_saves_and_restores(workdir, tmp_path):
  """A pseudo-terminal: the banner, a prompt per turn, a reply per turn, /save, /quit;
  started again on the state file it says how many turns it restored."""
  state = tmp_path / 'talk.npz'
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  runs = ((('hello', 'again'), ''), (('more',), ', 2 turns restored'))
  for run, (turns, restored) in enumerate(runs):
    leader, follower = pty.openpty()
    process = subprocess.Popen(_program(workdir, f'--state_file={state}'), cwd=ROOT, env=env,
                               stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    seen = bytearray()
    _read_until(leader, f'{workdir}{restored}. /reset'.encode(), seen)
    for turn in turns:
      _read_until(leader, b'> ', seen)
      seen.clear()
      os.write(leader, turn.encode() + b'\n')
      _read_until(leader, b'\n> ', seen)  # its reply, then the next prompt
      os.write(leader, b'/save\n' if run == 0 else b'')
      if run == 0:
        _read_until(leader, f'(saved to {state})'.encode(), seen)
    os.write(leader, b'/quit\n')
    assert process.wait(timeout=60) == 0
    os.close(leader)
    assert state.is_file()


def test_the_program_reads_turns_from_a_pipe(workdir, tmp_path):
  """One reply line per input line, greedy replies the same as in-process; a line that
  is not UTF-8 ends it with one line and status 2 (an empty workdir: memgpt-sample's
  loader, tests/test_cli.py)."""
  result = subprocess.run(_program(workdir), input=b'hello\nhow are you\ncaf\xe9\n', cwd=ROOT,
                          env=dict(os.environ, JAX_PLATFORMS='cpu'), capture_output=True,
                          timeout=300)
  talk = conversation(workdir)
  want = [talk.reply(text, sampled(max_new_tokens=12), io.StringIO()).text
          for text in ('hello', 'how are you')]
  assert result.stdout.decode().split('\n')[:2] == want, result.stderr
  assert result.returncode == 2
  assert result.stderr.decode().strip().splitlines()[-1] == (
      'memgpt-chat: error: line 3 is not UTF-8 text (invalid continuation byte at byte 3): '
      'type it again')


def test_ctrl_c_cuts_a_reply_short_and_the_conversation_goes_on(workdir, tmp_path):
  """A reply of up to 100,000 tokens, interrupted once it streams: the turn closes,
  the prompt comes back, the next turn is answered, and /quit leaves with status 0."""
  leader, follower = pty.openpty()
  process = subprocess.Popen(
      _program(workdir, '--max_new_tokens=100000', '--temperature=1'), cwd=ROOT,
      env=dict(os.environ, JAX_PLATFORMS='cpu'), stdin=follower, stdout=follower,
      stderr=follower)
  os.close(follower)
  seen = bytearray()
  _read_until(leader, b'> ', seen)
  os.write(leader, b'talk for a long time\n')
  _read_until(leader, b'talk for a long time\r\n', seen)
  seen.clear()
  deadline = time.time() + 120
  while len(seen) < 20:  # the reply streams
    assert time.time() < deadline, bytes(seen)
    if select.select([leader], [], [], 1)[0]:
      seen.extend(os.read(leader, 4096))
  process.send_signal(signal.SIGINT)
  _read_until(leader, b'\n> ', seen)
  os.write(leader, b'/quit\n')
  assert process.wait(timeout=60) == 0
  os.close(leader)
