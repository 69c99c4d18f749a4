"""Cached decoding: a prompt of any length is fed segment by segment, then new tokens
are sampled and fed one at a time, with the KV window, the memory and the pointer cache
carried exactly as in training (the memory is written after every T tokens). The new
tokens come from one compiled loop (`lax.scan`) per chunk of `chunk_size` tokens, so
the host waits on the device once per chunk, not once per token. `generate` is the one
loop behind memgpt-sample (memgpt_jax/sampling.py) and the task metrics' greedy targets
(`generate_targets`, memgpt_jax/training/evaluation.py). An encoder-decoder model's
source is encoded once, at `start`; every step reads it from the state.
"""

from collections.abc import Iterator
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from memgpt_jax.model.pointer import mixture_log_probs
from memgpt_jax.model.state import MemoryState, Source, WindowCache
from memgpt_jax.model.transformer import MemGPT, empty_window, unrolled_layers


@dataclasses.dataclass
class DecodeState:
  memory: MemoryState
  window: WindowCache
  position: int  # tokens already in the current segment, in [0, T)
  source: Source | None = None  # model.arch='encoder_decoder': the encoded sources


class Decoder:
  """One model and its parameters, with the compiled chunk / segment-end steps.

  The steps are compiled once per model (equal configs make equal models) and shape,
  not once per Decoder: a fresh Decoder, e.g. for each evaluation, traces nothing new.
  A model with scan_layers decodes with its layers unrolled (`model`, `params` become
  that model and its parameters laid out per layer): scanned, every token would copy
  each layer's weights out of their stack and the whole stacked KV window into a new
  one (the 125M MemGPT decoded 2.1-2.2x slower on a CPU that way: docs/performance.md,
  'Decoding').
  """

  def __init__(self, model: MemGPT, params):
    if model.cfg.scan_layers:
      params = None if params is None else unrolled_layers(params, model.cfg)
      model = model.clone(cfg=dataclasses.replace(model.cfg, scan_layers=False))
    self.model = model
    self.params = params

  def start(self, batch_size: int, source: np.ndarray | None = None) -> DecodeState:
    """The state before anything is fed; an encoder-decoder model's encodes `source`
    [B, S] (S a multiple of T), left-padded with -1 where rows differ in length."""
    window = empty_window(self.model.cfg, batch_size)
    if self.model.cfg.arch != 'encoder_decoder':
      return DecodeState(_initial_state(self.model, self.params, batch_size), window, 0)
    if source is None:
      raise ValueError("model.arch='encoder_decoder' decodes from a source")
    source = np.asarray(source)
    encoded, memory = _encode(self.model, self.params, np.maximum(source, 0),
                              (source >= 0).astype(np.int32))
    return DecodeState(memory, window, 0, encoded)

  def feed(self, state: DecodeState, tokens: jax.Array, prefix: bool = False,
           doc_ids: jax.Array | None = None) -> tuple[jax.Array, DecodeState]:
    """Feeds tokens [B, L]; returns log p(next token | all fed) [B, L, V] and the new
    state. `prefix`: the tokens are seq2seq inputs (feed all inputs in one call: those
    in a segment are then one chunk and attend both ways). `doc_ids` [B, L]: default
    all 1 (one document); 0 marks left padding, which nothing attends to."""
    segment_len = self.model.cfg.segment_len
    doc_ids = jnp.ones_like(tokens) if doc_ids is None else doc_ids
    outputs = []
    offset = 0
    while offset < tokens.shape[1]:
      size = min(segment_len - state.position, tokens.shape[1] - offset)
      chunk = slice(offset, offset + size)
      log_probs, window = _chunk_log_probs(
          self.model, self.params, tokens[:, chunk], jnp.int32(state.position), state.memory,
          state.window, doc_ids[:, chunk], jnp.full((tokens.shape[0], size), prefix),
          state.source)
      outputs.append(log_probs)
      offset += size
      state = dataclasses.replace(state, window=window, position=state.position + size)
      if state.position == segment_len:
        memory = _end_segment(self.model, self.params, state.memory, state.window)
        state = dataclasses.replace(state, memory=memory, position=0,
                                    window=empty_window(self.model.cfg, tokens.shape[0]))
    return jnp.concatenate(outputs, axis=1), state

  def prefill(self, state: DecodeState, tokens: np.ndarray, prefix: bool = False,
              doc_ids: np.ndarray | None = None) -> tuple[jax.Array, DecodeState]:
    """Feeds tokens [B, L] of any length (host arrays); returns log p(next token | all
    fed) [B, V] for the last position only, and the new state: what a prompt or a book
    fed segment by segment needs, in memory that does not grow with L and time linear
    in it. Whole segments go through one compiled loop, SEGMENTS_PER_CALL at a time;
    the rest (the end of a segment fed before, a last partial one) through `feed`.
    `prefix` and `doc_ids` as for `feed`."""
    tokens = np.asarray(tokens)
    doc_ids = np.ones_like(tokens) if doc_ids is None else np.asarray(doc_ids)
    segment_len, length = self.model.cfg.segment_len, tokens.shape[1]
    head = min(length, (segment_len - state.position) % segment_len)
    last = None
    if head:
      log_probs, state = self.feed(state, tokens[:, :head], prefix, doc_ids[:, :head])
      last = log_probs[:, -1]
    offset = head
    for group in (SEGMENTS_PER_CALL, 1):
      while length - offset >= group * segment_len:
        span = slice(offset, offset + group * segment_len)
        by_segment = lambda a: a[:, span].reshape(a.shape[0], group, segment_len).swapaxes(0, 1)
        last, memory, window = _feed_segments(
            self.model, self.params, by_segment(tokens), by_segment(doc_ids),
            jnp.bool_(prefix), state.memory, state.window, state.source)
        state = dataclasses.replace(state, memory=memory, window=window, position=0)
        offset += group * segment_len
    if offset < length:
      log_probs, state = self.feed(state, tokens[:, offset:], prefix, doc_ids[:, offset:])
      last = log_probs[:, -1]
    return last, state

  def sample_and_feed(self, state: DecodeState, log_probs: jax.Array, done: jax.Array,
                      rng: jax.Array, first_step: int, count: int, temperature: float,
                      top_k: int, top_p: float, stop_id: int | None):
    """`count` new tokens in one compiled loop: each sampled from log_probs [B, V]
    (with key fold_in(rng, step)), then fed. -> (tokens [B, count], log_probs, done,
    state); rows that emitted stop_id (done [B]) keep emitting it."""
    carry, tokens = _sample_and_feed(
        self.model, self.params, state.memory, state.window, jnp.int32(state.position),
        log_probs, done, rng, jnp.int32(first_step), jnp.float32(temperature),
        jnp.int32(-1 if stop_id is None else stop_id), state.source, count=count,
        top_k=top_k, top_p=float(top_p))
    memory, window, position, log_probs, done = carry
    return tokens, log_probs, done, DecodeState(memory, window, int(position), state.source)


@functools.partial(jax.jit, static_argnums=0, static_argnames=('count', 'top_k', 'top_p'))
def _sample_and_feed(model: MemGPT, params, memory, window, position, log_probs, done, rng,
                     first_step, temperature, stop_id, source, *, count: int, top_k: int,
                     top_p: float):
  """Decoder.sample_and_feed's loop, traced once per model, shape, count, top_k and
  top_p."""
  cfg = model.cfg
  batch = log_probs.shape[0]
  ones = jnp.ones((batch, 1), jnp.int32)

  def step(carry, index):
    memory, window, position, log_probs, done = carry
    token = sample_token(jax.random.fold_in(rng, first_step + index), log_probs,
                         temperature, top_k, top_p)
    token = jnp.where(done, stop_id, token)  # [B]
    done = done | (token == stop_id)
    log_probs, window = _chunk_log_probs(model, params, token[:, None], position, memory,
                                         window, ones, jnp.zeros((batch, 1), bool), source)
    position = position + 1
    # The window is not emptied at a segment's end: its next segment overwrites it
    # from position 0 on, and masks hide the positions not yet overwritten. Passed
    # through the branch, its buffers would be copied at every token.
    memory = jax.lax.cond(position == cfg.segment_len,
                          lambda memory: _end_segment(model, params, memory, window),
                          lambda memory: memory, memory)
    position = jnp.where(position == cfg.segment_len, 0, position)
    return (memory, window, position, log_probs[:, -1], done), token

  carry, tokens = jax.lax.scan(step, (memory, window, position, log_probs, done),
                               jnp.arange(count))
  return carry, tokens.T


# Whole segments fed per call of prefill's compiled loop: enough that the host's
# dispatch is a small share of the time, few enough that any prompt compiles nothing new.
SEGMENTS_PER_CALL = 64


@functools.partial(jax.jit, static_argnums=0)
def _feed_segments(model: MemGPT, params, tokens, doc_ids, prefix, memory, window, source):
  """Feeds segments [S, B, T] in one loop, each a chunk then the end of its segment;
  -> (log p(next token) [B, V] after the last, memory, window)."""
  shape = tokens.shape[1:]

  def segment(carry, inputs):
    memory, window, _ = carry
    segment_tokens, segment_docs = inputs
    output, window = model.apply(params, segment_tokens, 0, memory, window, segment_docs,
                                 jnp.full(shape, prefix), source=source,
                                 method=MemGPT.process_chunk)
    last = lambda a: None if a is None else a[:, -1:]
    log_probs = mixture_log_probs(last(output.vocab_logits), last(output.log_gate),
                                  last(output.log_attn), output.proposals,
                                  last(output.pointer_share))[:, 0]
    memory = model.apply(params, memory, window, method=MemGPT.end_segment)
    return (memory, window, log_probs), None

  initial = jnp.zeros((shape[0], model.cfg.vocab_size), jnp.float32)
  (memory, window, log_probs), _ = jax.lax.scan(segment, (memory, window, initial),
                                                (tokens, doc_ids))
  return log_probs, memory, window


@functools.partial(jax.jit, static_argnums=(0, 2))
def _initial_state(model: MemGPT, params, batch_size: int) -> MemoryState:
  return model.apply(params, batch_size, method=MemGPT.initial_state)


@functools.partial(jax.jit, static_argnums=0)
def _end_segment(model: MemGPT, params, memory: MemoryState,
                 window: WindowCache) -> MemoryState:
  return model.apply(params, memory, window, method=MemGPT.end_segment)


@functools.partial(jax.jit, static_argnums=0)
def _encode(model: MemGPT, params, source_tokens, source_docs) -> tuple[Source, MemoryState]:
  return model.apply(params, source_tokens, source_docs, method=MemGPT.encode)


@functools.partial(jax.jit, static_argnums=0)
def _chunk_log_probs(model: MemGPT, params, tokens, start, memory, window, doc_ids, prefix,
                     source):
  output, window = model.apply(params, tokens, start, memory, window, doc_ids, prefix,
                               source=source, method=MemGPT.process_chunk)
  log_probs = mixture_log_probs(output.vocab_logits, output.log_gate, output.log_attn,
                                output.proposals, output.pointer_share)
  return log_probs, window


@functools.partial(jax.jit, static_argnames=('top_k', 'top_p'))
def sample_token(rng: jax.Array, log_probs: jax.Array, temperature: float, top_k: int,
                 top_p: float) -> jax.Array:
  """log_probs [B, V] -> token ids [B]; temperature 0 is greedy. top_k 0 and top_p 1
  filter nothing and cost nothing (the nucleus sorts the vocabulary every token)."""
  if top_k:
    kth = jax.lax.top_k(log_probs, top_k)[0][:, -1:]
    log_probs = jnp.where(log_probs < kth, -jnp.inf, log_probs)
  if top_p < 1:  # nucleus: the smallest set of most likely tokens whose mass reaches top_p
    sorted_probs = jnp.sort(jnp.exp(log_probs), axis=-1)[:, ::-1]
    mass_before = jnp.cumsum(sorted_probs, axis=-1) - sorted_probs
    kept = jnp.where(mass_before < top_p, sorted_probs, jnp.inf).min(axis=-1, keepdims=True)
    log_probs = jnp.where(jnp.exp(log_probs) < kept, -jnp.inf, log_probs)
  greedy = jnp.argmax(log_probs, axis=-1)
  sampled = jax.random.categorical(rng, log_probs / jnp.maximum(temperature, 1e-6))
  return jnp.where(temperature > 0, sampled, greedy).astype(jnp.int32)


def generate(decoder: Decoder, prompt: np.ndarray, max_new_tokens: int, rng: jax.Array,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             stop_id: int | None = None, prefix: bool = False,
             chunk_size: int = 16) -> Iterator[np.ndarray]:
  """Yields the next token of every sample [B], one step at a time (for streaming),
  decoded chunk_size tokens at a time.

  prompt: [B, L] int32, L >= 1, left-padded with -1 where rows differ in length.
  prefix: the prompt is a seq2seq input (ended by eos) and the continuation its target.
  An encoder-decoder model encodes it (left-padded to whole segments) and its decoder
  starts from the eos that ends it, as in training (memgpt_jax/data/pipeline.py).
  Samples that emitted stop_id keep emitting it; it ends when all have.
  """
  source = None
  if prefix and decoder.model.cfg.arch == 'encoder_decoder':
    segment_len = decoder.model.cfg.segment_len
    source = np.pad(prompt, ((0, 0), (-prompt.shape[1] % segment_len, 0)), constant_values=-1)
    prompt, prefix = prompt[:, -1:], False
  log_probs, state = decoder.prefill(
      decoder.start(prompt.shape[0], source), np.maximum(prompt, 0), prefix=prefix,
      doc_ids=(prompt >= 0).astype(np.int32))
  done = jnp.zeros(prompt.shape[0], bool)
  count = max(1, min(chunk_size, max_new_tokens))  # one compiled loop for every chunk
  for first in range(0, max_new_tokens, count):
    tokens, log_probs, done, state = decoder.sample_and_feed(
        state, log_probs, done, rng, first, count, temperature, top_k, top_p, stop_id)
    for token in np.asarray(tokens).T[:max_new_tokens - first]:
      yield token
      if stop_id is not None and (token == stop_id).all():
        return


class Reader:
  """One row of text read token by token with the model's state carried: feed any
  number of tokens, then sample a continuation, again and again (memgpt-chat's
  turns, the Python API's readers). Tokens are fed in chunks of power-of-two sizes that
  end no later than their segment, so whatever the lengths fed, at most log2(T) + 1
  chunk shapes compile; after any sequence of feeds and samples the state equals that
  of feeding everything read in one call (tests/test_chat.py)."""

  def __init__(self, decoder: Decoder):
    self._decoder = decoder
    self.reset()

  def reset(self):
    """Forgets everything read."""
    self.at = (self._decoder.start(1), None)  # (the state, log p(next token) [1, V])

  def feed(self, ids: np.ndarray, scores: bool = False) -> np.ndarray | None:
    """Reads ids [L]; with `scores`, returns log p(each id | everything before it) [L]
    (NaN for the first id of a reader that has read nothing: nothing predicts it)."""
    state, log_probs = self.at
    ids = np.asarray(ids, np.int32)
    found = np.full(len(ids), np.nan, np.float32) if scores else None
    segment_len, offset = self._decoder.model.cfg.segment_len, 0
    while offset < len(ids):
      room = min(len(ids) - offset, segment_len - state.position)
      size = 1 << (room.bit_length() - 1)
      piece = ids[offset:offset + size]
      chunk, state = self._decoder.feed(state, jnp.asarray(piece[None]))
      if scores:
        before = chunk[0, :-1] if log_probs is None else jnp.concatenate(
            [log_probs, chunk[0, :-1]])
        targets = jnp.asarray(piece[len(piece) - len(before):, None])
        picked = np.asarray(jnp.take_along_axis(before, targets, axis=1))[:, 0]
        found[offset + size - len(picked):offset + size] = picked
      log_probs, offset = chunk[:, -1], offset + size
    self.at = (state, log_probs)
    return found

  def sample(self, max_new_tokens: int, rng: jax.Array, temperature: float, top_k: int,
             top_p: float, stop_id: int | None = None,
             chunk_size: int = 16) -> Iterator[list[int]]:
    """Samples up to max_new_tokens tokens (fewer when stop_id comes: it is the last),
    yielding each compiled chunk's as it is decoded; after each yield the state holds
    exactly the tokens yielded so far (a chunk sampled past the end is read again
    up to it). Stopped early (Ctrl-C), the chunk in flight is not read."""
    if self.at[1] is None:
      raise ValueError('a reader samples after something was fed')
    for first in range(0, max_new_tokens, chunk_size):
      before = self.at
      tokens, log_probs, _, state = self._decoder.sample_and_feed(
          before[0], before[1], jnp.zeros(1, bool), rng, first, chunk_size, temperature,
          top_k, top_p, stop_id)
      kept = [int(t) for t in np.asarray(tokens)[0, :max_new_tokens - first]]
      ended = stop_id in kept
      if ended:
        kept = kept[:kept.index(stop_id) + 1]
      if len(kept) == chunk_size:
        self.at = (state, log_probs)
      else:
        self.at = before
        self.feed(np.asarray(kept, np.int32))
      yield kept
      if ended:
        return


def generate_targets(decoder: Decoder, tokenizer, sources: list[str], max_new_tokens: int,
                     max_source_tokens: int) -> list[str]:
  """Greedy targets of a batch of seq2seq sources (each truncated to max_source_tokens).

  Shorter sources are left-padded: exactly a one-sample decode when an example fits
  one segment; otherwise the padding moves where later segments (memory writes) start.
  """
  rows = [np.append(tokenizer.encode(s)[:max_source_tokens], np.int32(tokenizer.eos_id))
          for s in sources]  # as in training: the source, then the eos that ends it
  width = max(len(r) for r in rows)
  prompts = np.full((len(rows), width), -1, np.int32)  # left padding
  for index, row in enumerate(rows):
    prompts[index, width - len(row):] = row
  steps = generate(decoder, prompts, max_new_tokens, jax.random.PRNGKey(0), temperature=0.0,
                   stop_id=tokenizer.eos_id, prefix=True)
  tokens = np.stack(list(steps), axis=1)
  ends = [np.flatnonzero(row == tokenizer.eos_id) for row in tokens]
  return [tokenizer.decode(row[:end[0]] if len(end) else row)
          for row, end in zip(tokens, ends)]
