"""MemGPT-JAX: the Memory-Gated Pointer-Transformer in JAX/Flax.

`memgpt_jax.load(workdir)` gives a trained model to score and generate text with
(memgpt_jax/api.py). It is imported on first use: the programs import this package
before JAX, and a SIGTERM must be answered while JAX imports.
"""


def __getattr__(name: str):
  if name in ('load', 'LanguageModel', 'Settings', 'TextReader'):
    from memgpt_jax import api  # pylint: disable=import-outside-toplevel
    return getattr(api, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
