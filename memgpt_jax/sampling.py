"""memgpt-sample's work: restore a trained model's parameters from its workdir, check
the prompt and settings, and stream text decoded by memgpt_jax.decode."""

import pathlib
import sys
from typing import TextIO

import jax
import ml_collections
import numpy as np

from memgpt_jax import ranges
from memgpt_jax.data import records
from memgpt_jax.data.pipeline import task_configs
from memgpt_jax.decode import Decoder, generate
from memgpt_jax.errors import UserError
from memgpt_jax.training import workdir as workdir_lib


def load_decoder(workdir: str | pathlib.Path):
  """-> (Decoder, tokenizer, config) from the newest checkpoint that restores and the
  config saved with it (damaged or non-finite newer ones are skipped with a warning).
  Reads the parameters only, not the optimizer state."""
  workdir = pathlib.Path(workdir)
  if not workdir_lib.has_checkpoint(workdir):
    raise UserError(f'{workdir} holds no checkpoint to sample from: train first with '
                    f'memgpt-train --workdir={workdir}')
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  model, params, tokenizer, config = workdir_lib.newest_model(workdir, device)
  return Decoder(model, {'params': params}), tokenizer, config


def _prompt_ids(tokenizer, text: str, seq2seq: bool) -> np.ndarray:
  ids = tokenizer.encode(text)
  return np.append(ids, np.int32(tokenizer.eos_id)) if seq2seq else ids


def prompt_text(prompt: str | None, prompt_file: str | None, inputs: str | None) -> str:
  """The text memgpt-sample continues, from exactly one of --prompt, --prompt_file and
  --inputs; checked before the model loads, so a mistake costs no wait."""
  given = [value for value in (prompt, prompt_file, inputs) if value is not None]
  if len(given) != 1:
    raise UserError('give exactly one of --prompt=TEXT, --prompt_file=FILE and --inputs=TEXT')
  text = given[0] if prompt_file is None else _read_prompt_file(pathlib.Path(prompt_file))
  if not text:
    raise UserError('the prompt is empty: give --prompt=TEXT or a non-empty --prompt_file')
  return text


def _read_prompt_file(path: pathlib.Path) -> str:
  """The tokenizer takes text: a file in another encoding is refused, not garbled. Read
  as bytes: its line ends as written (universal newlines would turn \\r\\n into \\n)."""
  if not path.is_file():
    raise UserError(f'--prompt_file {path} does not exist')
  try:
    return path.read_bytes().decode('utf-8')
  except UnicodeDecodeError as error:
    raise UserError(f'--prompt_file {path} is not UTF-8 text ({error.reason} at byte '
                    f'{error.start}): convert it, e.g. with iconv -t UTF-8') from None


def check_takes_inputs(config: ml_collections.ConfigDict, workdir: str | pathlib.Path):
  """--inputs is a seq2seq source: a causal LM was never trained to answer one."""
  if not any(records.is_seq2seq(task.data) for task in task_configs(config).values()):
    raise UserError(f'--inputs is for seq2seq models; {workdir} holds a causal LM '
                    '(use --prompt)')


def check_settings(vocab_size: int, **settings):
  """UserError naming the first memgpt-sample flag whose value cannot sample: each has
  the range of its sample.* setting (memgpt_jax/ranges.py); top_k at most the vocabulary."""
  for name, value in settings.items():
    if problem := ranges.RANGES[f'sample.{name}'].problem(f'--{name}', value):
      raise UserError(problem)
  if settings['top_k'] > vocab_size:
    raise UserError(f'--top_k={settings["top_k"]} must be at most {vocab_size}, the '
                    'vocabulary size (0: all tokens)')


def sample(decoder: Decoder, tokenizer, prompt: str, max_new_tokens: int, seed: int = 0,
           temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           num_samples: int = 1, seq2seq: bool = False,
           out: TextIO = sys.stdout) -> list[str]:
  """Writes the prompt and its continuations to `out` as they are decoded.

  seq2seq: the prompt is a source (the model's inputs) and the continuation its
  target. Several samples are decoded as one batch: the first streams token by token
  under its header, and each other is written whole as soon as it has ended (its eos)
  and the ones before it have been written.
  """
  if not prompt:
    raise UserError('the prompt is empty: give --prompt=TEXT or a non-empty --prompt_file')
  check_settings(decoder.model.cfg.vocab_size, max_new_tokens=max_new_tokens,
                  num_samples=num_samples, temperature=temperature, top_k=top_k, top_p=top_p)
  ids = _prompt_ids(tokenizer, prompt, seq2seq)
  prompts = np.tile(ids[None, :], (num_samples, 1)).astype(np.int32)
  steps = generate(decoder, prompts, max_new_tokens, jax.random.PRNGKey(seed),
                   temperature=temperature, top_k=top_k, top_p=top_p,
                   stop_id=tokenizer.eos_id, prefix=seq2seq)
  separator = '\n=> ' if seq2seq else ''
  header = (lambda index: f'--- sample {index} ---\n') if num_samples > 1 else (lambda _: '')
  pieces = [[] for _ in range(num_samples)]
  ended = np.zeros(num_samples, bool)
  written = 0  # samples written whole; the first one streams until it ends

  def write_ended(upto: int):
    nonlocal written
    while written < upto:
      if written:
        out.write(f'{header(written)}{prompt}{separator}{tokenizer.decode(pieces[written])}\n')
      else:
        out.write(stream.finish() + '\n')
      written += 1
    out.flush()

  stream = tokenizer.decoder()
  out.write(header(0) + prompt + separator)
  for tokens in steps:
    for index, token in enumerate(tokens):
      pieces[index].append(int(token))
    ended |= tokens == tokenizer.eos_id
    if not written:
      out.write(stream.push(int(tokens[0])))
    write_ended(int(np.argmin(ended)) if not ended.all() else num_samples)
  write_ended(num_samples)
  return [tokenizer.decode(row) for row in pieces]

