"""Restore a trained model from its workdir and sample text from it, streaming."""

import pathlib
import sys
from typing import TextIO

import jax
import numpy as np

from memgpt_jax.data.tokenizer import make_tokenizer
from memgpt_jax.decode import Decoder, generate
from memgpt_jax.errors import UserError
from memgpt_jax.training.checkpointing import Checkpointer
from memgpt_jax.training.trainer import abstract_train_state


def load_decoder(workdir: str | pathlib.Path):
  """-> (Decoder, tokenizer, config) from the latest checkpoint and the config saved with it."""
  workdir = pathlib.Path(workdir)
  if not (workdir / 'checkpoints').is_dir():
    raise UserError(f'{workdir} holds no checkpoint to sample from: train first with '
                    f'memgpt-train --workdir={workdir}')
  checkpointer = Checkpointer(workdir, async_save=False)
  try:
    if checkpointer.latest_step() is None:
      raise UserError(f'{workdir} holds no finished checkpoint to sample from')
    config = checkpointer.restore_config()
    tokenizer = make_tokenizer(config.data)
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    model, abstract = abstract_train_state(config, tokenizer.vocab_size, device)
    state = checkpointer.restore(abstract)
  finally:
    checkpointer.close()
  return Decoder(model, {'params': state.params}), tokenizer, config


def sample(decoder: Decoder, tokenizer, prompt: str, max_new_tokens: int, seed: int = 0,
           temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           num_samples: int = 1, out: TextIO = sys.stdout) -> list[str]:
  """Writes the prompt and its continuations to `out` as they are decoded.

  One sample streams token by token; several are decoded as one batch and each is
  written when the batch is done.
  """
  ids = tokenizer.encode(prompt)
  if not len(ids):
    raise UserError('the prompt is empty: give --prompt=TEXT or a non-empty --prompt_file')
  if max_new_tokens < 1 or num_samples < 1:
    raise UserError('--max_new_tokens and --num_samples must be at least 1')
  if temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
    raise UserError('need temperature >= 0, 0 < top_p <= 1 and top_k >= 0')
  prompts = np.tile(ids[None, :], (num_samples, 1)).astype(np.int32)
  steps = generate(decoder, prompts, max_new_tokens, jax.random.PRNGKey(seed),
                   temperature=temperature, top_k=top_k, top_p=top_p,
                   stop_id=tokenizer.eos_id)
  if num_samples == 1:
    stream = tokenizer.decoder()
    out.write(prompt)
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
    out.write(f'--- sample {index} ---\n{prompt}{text}\n')
  return texts
