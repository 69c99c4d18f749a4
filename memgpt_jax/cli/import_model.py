"""memgpt-import --from=DIR --workdir=OUT [--config=configs/imported.py --config.a.b=v ...]

Reads a Hugging Face model directory (config.json, *.safetensors, tokenizer.json) of
GPT-2's or Llama's family and writes a workdir the other programs read: config.json
(the model's settings over --config's, the memory and pointer as the flags say), the
tokenizer, and a parameters-only checkpoint (step 0): memgpt-sample samples from it,
--config.init_from=OUT (or --config=configs/imported.py:OUT) fine-tunes it. Parts the
pretrained model lacks (memory, pointer) start from their initialisation.
"""

# pylint: disable=wrong-import-position; SIGTERM is answered before JAX is imported
from memgpt_jax.cli import signals
signals.exit_on_sigterm('memgpt-import')

import pathlib

from absl import flags
from ml_collections import config_flags

from memgpt_jax import config_lib, hf_io
from memgpt_jax.cli.common import run_main

_IMPORTED = config_lib.DEFAULT_CONFIG.with_name('imported.py')
_CONFIG = config_flags.DEFINE_config_file('config', str(_IMPORTED),
                                          'Settings the import starts from.', lock_config=False)
_FROM = flags.DEFINE_string('from', None, 'A Hugging Face model directory.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where to write the imported model (new).')
flags.mark_flags_as_required(['from', 'workdir'])


def main(argv):
  del argv
  hf_io.import_model(pathlib.Path(_FROM.value), pathlib.Path(_WORKDIR.value), _CONFIG.value)
  print(f'memgpt-import: {_FROM.value} -> {_WORKDIR.value}')


def run():
  run_main('memgpt-import', main)


if __name__ == '__main__':
  run()
