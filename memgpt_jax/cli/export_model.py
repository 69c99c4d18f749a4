"""memgpt-export --workdir=DIR --to=OUT

Writes the newest checkpoint of a workdir as a Hugging Face model directory
(config.json, model.safetensors, tokenizer.json, tokenizer_config.json): GPT-2's family
or Llama's, whichever the model's settings are; memory and pointer must be off, and
the tokenizer a tokenizer.json (data.tokenizer='huggingface', as memgpt-import sets).
"""

# pylint: disable=wrong-import-position; SIGTERM is answered before JAX is imported
from memgpt_jax.cli import signals
signals.exit_on_sigterm('memgpt-export')

import pathlib

from absl import flags

from memgpt_jax import hf_io
from memgpt_jax.cli.common import run_main

_WORKDIR = flags.DEFINE_string('workdir', None,
                                'A workdir written by memgpt-train or memgpt-import.')
_TO = flags.DEFINE_string('to', None, 'The directory to write (new).')
flags.mark_flags_as_required(['workdir', 'to'])


def main(argv):
  del argv
  hf_io.export_model(pathlib.Path(_WORKDIR.value), pathlib.Path(_TO.value))
  print(f'memgpt-export: {_WORKDIR.value} -> {_TO.value}')


def run():
  run_main('memgpt-export', main)


if __name__ == '__main__':
  run()
