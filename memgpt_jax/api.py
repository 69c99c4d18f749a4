"""The Python API, for notebooks and programs built on a trained model:

    import memgpt_jax
    lm = memgpt_jax.load('runs/default')      # the newest checkpoint that restores
    lm.score('def f(x):')                     # log p of each token given those before
    lm.generate('def ', max_new_tokens=40)    # a continuation, sampled
    reader = lm.reader()                      # a state carried across calls:
    reader.feed('a whole book ...')           #   read any length, memory flat in it,
    reader.generate(40)                       #   then continue it

docs/python_api.md has the whole tour (its examples run as tests).
"""

import dataclasses
import pathlib

import jax
import ml_collections
import numpy as np

from memgpt_jax import sampling
from memgpt_jax.decode import Decoder, Reader
from memgpt_jax.model.transformer import MemGPT


@dataclasses.dataclass(frozen=True)
class Settings:
  """How text is sampled, as memgpt-sample's flags."""
  temperature: float
  top_k: int
  top_p: float
  seed: int = 0

  @classmethod
  def of(cls, config: ml_collections.ConfigDict, **changes) -> 'Settings':
    """A config's sample.* settings (what memgpt-train samples with), with changes."""
    sample = config.sample
    return cls(**({'temperature': sample.temperature, 'top_k': sample.top_k,
                   'top_p': sample.top_p} | changes))


class TextReader:
  """Text read with the model's state carried from call to call."""

  def __init__(self, decoder: Decoder, tokenizer, settings: Settings):
    self._reader, self._tokenizer, self._settings = Reader(decoder), tokenizer, settings
    self._vocab_size = decoder.model.cfg.vocab_size
    self._samples = 0

  def feed(self, text: str) -> np.ndarray:
    """Reads `text`; returns log p(each of its tokens | everything read before it),
    natural log, float32 (NaN for the very first token read: nothing predicts it)."""
    return self._reader.feed(self._tokenizer.encode(text), scores=True)

  def generate(self, max_new_tokens: int, settings: Settings | None = None) -> str:
    """Samples a continuation of everything read and reads it too (the next feed or
    generate goes on after it); `settings` default to the model's config's."""
    settings = settings or self._settings
    sampling.check_settings(self._vocab_size, max_new_tokens=max_new_tokens,
                            temperature=settings.temperature, top_k=settings.top_k,
                            top_p=settings.top_p)
    rng = jax.random.fold_in(jax.random.PRNGKey(settings.seed), self._samples)
    self._samples += 1
    tokens = [t for chunk in self._reader.sample(max_new_tokens, rng, settings.temperature,
                                                 settings.top_k, settings.top_p)
              for t in chunk]
    return self._tokenizer.decode(tokens)

  def reset(self):
    """Forgets everything read."""
    self._reader.reset()


@dataclasses.dataclass(frozen=True)
class LanguageModel:
  """A trained model: the Flax module and its parameters as decoding runs them (a
  model with scan_layers has them per layer), its tokenizer and config."""
  model: MemGPT
  params: dict
  tokenizer: object
  config: ml_collections.ConfigDict

  def reader(self) -> TextReader:
    """A fresh state: feed text, generate, feed more; the state stays the same size."""
    return TextReader(Decoder(self.model, self.params), self.tokenizer,
                      Settings.of(self.config))

  def score(self, text: str) -> np.ndarray:
    """log p(each token of `text` | the tokens before it) from a fresh state (NaN for
    the first)."""
    return self.reader().feed(text)

  def bits_per_byte(self, text: str) -> float:
    """Bits per byte of `text` after its first token (what evaluation reports)."""
    log_probs = self.score(text)[1:]
    ids = self.tokenizer.encode(text)[1:]
    return float(-log_probs.sum() / np.log(2) / self.tokenizer.num_bytes(ids))

  def generate(self, prompt: str, max_new_tokens: int,
               settings: Settings | None = None) -> str:
    """A continuation of `prompt` (the prompt not included)."""
    reader = self.reader()
    reader.feed(prompt)
    return reader.generate(max_new_tokens, settings)


def load(workdir: str | pathlib.Path) -> LanguageModel:
  """The model of a memgpt-train workdir's newest checkpoint that restores, on the
  first local device (UserError, one line, if there is none)."""
  decoder, tokenizer, config = sampling.load_decoder(workdir)
  return LanguageModel(decoder.model, decoder.params, tokenizer, config)
