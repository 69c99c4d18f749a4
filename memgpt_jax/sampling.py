"""Restore a trained model from its workdir and sample text from it, streaming; and
greedy seq2seq generation for task metrics."""

import pathlib
import sys
from typing import TextIO

import jax
import numpy as np

from memgpt_jax.data.tokenizer import make_tokenizer
from memgpt_jax.decode import Decoder, generate
from memgpt_jax.errors import UserError
from memgpt_jax.training import pretrained
from memgpt_jax.training.steps import abstract_train_state


def load_decoder(workdir: str | pathlib.Path):
  """-> (Decoder, tokenizer, config) from the latest checkpoint and the config saved
  with it. Reads the parameters only, not the optimizer state."""
  workdir = pathlib.Path(workdir)
  if not (workdir / 'checkpoints').is_dir():
    raise UserError(f'{workdir} holds no checkpoint to sample from: train first with '
                    f'memgpt-train --workdir={workdir}')
  config = pretrained.saved_config(workdir)
  tokenizer = make_tokenizer(config.data, workdir)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  model, abstract = abstract_train_state(config, tokenizer.vocab_size, device)
  params = pretrained.load_params(workdir, abstract.params)
  return Decoder(model, {'params': params}), tokenizer, config


def _prompt_ids(tokenizer, text: str, seq2seq: bool) -> np.ndarray:
  ids = tokenizer.encode(text)
  return np.append(ids, np.int32(tokenizer.eos_id)) if seq2seq else ids


def sample(decoder: Decoder, tokenizer, prompt: str, max_new_tokens: int, seed: int = 0,
           temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           num_samples: int = 1, seq2seq: bool = False,
           out: TextIO = sys.stdout) -> list[str]:
  """Writes the prompt and its continuations to `out` as they are decoded.

  seq2seq: the prompt is a source (the model's inputs) and the continuation its
  target. One sample streams token by token; several are decoded as one batch and
  each is written when the batch is done.
  """
  if not prompt:
    raise UserError('the prompt is empty: give --prompt=TEXT or a non-empty --prompt_file')
  if max_new_tokens < 1 or num_samples < 1:
    raise UserError('--max_new_tokens and --num_samples must be at least 1')
  if temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
    raise UserError('need temperature >= 0, 0 < top_p <= 1 and top_k >= 0')
  ids = _prompt_ids(tokenizer, prompt, seq2seq)
  prompts = np.tile(ids[None, :], (num_samples, 1)).astype(np.int32)
  steps = generate(decoder, prompts, max_new_tokens, jax.random.PRNGKey(seed),
                   temperature=temperature, top_k=top_k, top_p=top_p,
                   stop_id=tokenizer.eos_id, prefix=seq2seq)
  separator = '\n=> ' if seq2seq else ''
  if num_samples == 1:
    stream = tokenizer.decoder()
    out.write(prompt + separator)
    pieces = []
    for tokens in steps:
      pieces.append(int(tokens[0]))
      out.write(stream.push(int(tokens[0])))
      out.flush()
    out.write(stream.finish() + '\n')
    return [tokenizer.decode(pieces)]
  rows = np.stack(list(steps), axis=1)
  texts = [tokenizer.decode(row) for row in rows]
  for index, text in enumerate(texts):
    out.write(f'--- sample {index} ---\n{prompt}{separator}{text}\n')
  return texts


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

