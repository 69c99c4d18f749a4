"""memgpt-chat's work: a conversation whose model state (the KV window, the memory and
the pointer's cache) carries from turn to turn, so a turn costs the same at turn 2 as
at turn 2,000 and what was said long ago can be recalled from the memory. The turn
template comes from the model's config (`data.chat.*`), so the data a dialogue model was
trained on and the conversation agree. The state can be saved to a file and restored.
"""

import dataclasses
import hashlib
import json
import os
import pathlib
from typing import TextIO

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from memgpt_jax import config_lib
from memgpt_jax.data.turns import Template
from memgpt_jax.decode import Decoder, DecodeState, Reader
from memgpt_jax.errors import UserError

_STATE_FORMAT = 1


def template_of(config: ml_collections.ConfigDict) -> Template:
  """The turn template of a model's config (data.chat); a config saved before configs
  had it takes the default config's."""
  chat = config.data.get('chat') or config_lib.default_config().data.chat
  return Template(chat.user, chat.assistant, chat.end_of_turn, chat.get('reply_room', 0))


@dataclasses.dataclass(frozen=True)
class Sampling:
  """How replies are sampled (memgpt-chat's flags)."""
  max_new_tokens: int
  temperature: float
  top_k: int
  top_p: float
  seed: int


@dataclasses.dataclass(frozen=True)
class Reply:
  text: str
  tokens: tuple[int, ...]  # as sampled, the end-of-turn token left out


def params_digest(params) -> str:
  """A digest of a model's parameters: a saved conversation belongs to these alone."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(params):
    digest.update(np.asarray(leaf).tobytes())
  return digest.hexdigest()[:16]


class Conversation:
  """One conversation with one model: feed a user's turn, stream the reply."""

  def __init__(self, decoder: Decoder, tokenizer, template: Template):
    self._decoder, self._tokenizer, self.template = decoder, tokenizer, template
    end = tokenizer.encode(template.end_of_turn)
    if len(end) != 1:
      raise UserError(f'data.chat.end_of_turn {template.end_of_turn!r} is {len(end)} tokens '
                      'for this tokenizer; the reply stops at one token: choose one that is')
    self._end_id = int(end[0])
    self._segment_len = decoder.model.cfg.segment_len
    if template.reply_room:
      space = tokenizer.encode(' ')
      if len(space) != 1 or not 0 < template.reply_room < self._segment_len:
        raise UserError(f'data.chat.reply_room={template.reply_room} needs a space of one '
                        f'token and room in a segment of {self._segment_len} tokens')
      self._space_id = int(space[0])
    self.model_id = params_digest(decoder.params)
    self._reader = Reader(decoder)
    self.turns = 0

  def reset(self):
    """Forgets everything: the state of a model that has read nothing."""
    self._reader.reset()
    self.turns = 0

  def reply(self, text: str, sampling: Sampling, out: TextIO) -> Reply:
    """Feeds the user's turn, then writes the reply to `out` as it is decoded, ending
    at the end-of-turn token or after sampling.max_new_tokens (the end-of-turn token
    is fed then). Ctrl-C cuts the reply short and closes the turn; the state keeps
    what was written."""
    turn = np.asarray(self._tokenizer.encode(self.template.user_turn(text)), np.int32)
    used = self._reader.at[0].position  # of the current segment
    if self.template.reply_room and used and (
        used + len(turn) + self.template.reply_room > self._segment_len):
      self._reader.feed(np.full(self._segment_len - used, self._space_id, np.int32))
    self._reader.feed(turn)
    rng = jax.random.fold_in(jax.random.PRNGKey(sampling.seed), self.turns)
    self.turns += 1
    stream, reply, ended = self._tokenizer.decoder(), [], False
    try:
      for tokens in self._reader.sample(sampling.max_new_tokens, rng, sampling.temperature,
                                        sampling.top_k, sampling.top_p, self._end_id):
        ended = tokens[-1] == self._end_id
        words = tokens[:-1] if ended else tokens
        reply.extend(words)
        out.write(''.join(stream.push(t) for t in words))
        out.flush()
    except KeyboardInterrupt:
      pass  # the chunk in flight is dropped; the state holds what was written
    if not ended:
      self._reader.feed(np.asarray([self._end_id], np.int32))
    out.write(stream.finish() + '\n')
    out.flush()
    return Reply(self._tokenizer.decode(reply), tuple(reply))

  def save(self, path: str | pathlib.Path):
    """Writes the conversation's state to `path` (replaced whole: a crash mid-write
    leaves the old file)."""
    path = pathlib.Path(path)
    state, log_probs = self._reader.at
    leaves = jax.tree.leaves((state.memory, state.window))
    meta = {'format': _STATE_FORMAT, 'model': self.model_id, 'position': state.position,
            'turns': self.turns, 'fed': log_probs is not None}
    arrays = {f'leaf{i}': np.asarray(leaf) for i, leaf in enumerate(leaves)}
    if log_probs is not None:
      arrays['log_probs'] = np.asarray(log_probs)
    partial = path.with_name(path.name + '.partial')
    with open(partial, 'wb') as file:
      np.savez(file, meta=np.asarray(json.dumps(meta)), **arrays)
    os.replace(partial, path)

  def restore(self, path: str | pathlib.Path):
    """Reads a state `save` wrote; UserError (one line) for a file that is not one, or
    holds a conversation with another model."""
    path = pathlib.Path(path)
    try:
      with np.load(path, allow_pickle=False) as saved:
        arrays = dict(saved)
      meta = json.loads(str(arrays.pop('meta')))
    except (OSError, ValueError, KeyError) as error:
      raise UserError(f'--state_file {path} is not a saved conversation ({error})') from None
    if meta.get('format') != _STATE_FORMAT:
      raise UserError(f'--state_file {path} is not a saved conversation (format '
                      f'{meta.get("format")!r})')
    if meta['model'] != self.model_id:
      raise UserError(f'--state_file {path} holds a conversation with another model '
                      f'(parameters {meta["model"]}; this one {self.model_id}): start a new '
                      'one with another --state_file')
    fresh = self._decoder.start(1)
    template, structure = jax.tree.flatten((fresh.memory, fresh.window))
    leaves = [arrays.get(f'leaf{i}') for i in range(len(template))]
    if any(a is None or a.shape != t.shape or a.dtype != t.dtype
           for a, t in zip(leaves, template)):
      raise UserError(f'--state_file {path} does not fit this model\'s state')
    memory, window = jax.tree.unflatten(structure, [jnp.asarray(a) for a in leaves])
    log_probs = jnp.asarray(arrays['log_probs']) if meta['fed'] else None
    self._reader.at = (DecodeState(memory, window, int(meta['position'])), log_probs)
    self.turns = int(meta['turns'])

  def state(self) -> tuple[DecodeState, jax.Array | None]:
    """(the model's state, log p(next token)) after everything fed so far."""
    return self._reader.at
