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

import json
import pathlib
import shutil

from absl import flags
import flax
import flax.linen as nn
import jax
import numpy as np
from ml_collections import config_flags
import orbax.checkpoint as ocp

from memgpt_jax import config_lib, pretrained
from memgpt_jax.cli.common import run_main
from memgpt_jax.data.tokenizer import make_tokenizer
from memgpt_jax.errors import UserError
from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.transformer import MemGPT, init_tokens
from memgpt_jax.training import workdir as workdir_lib

_IMPORTED = config_lib.DEFAULT_CONFIG.with_name('imported.py')
_CONFIG = config_flags.DEFINE_config_file('config', str(_IMPORTED),
                                          'Settings the import starts from.', lock_config=False)
_FROM = flags.DEFINE_string('from', None, 'A Hugging Face model directory.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where to write the imported model (new).')
flags.mark_flags_as_required(['from', 'workdir'])


def _eos_token(directory: pathlib.Path, hf: dict) -> str:
  """The end-of-text token: tokenizer_config.json's eos_token, else config.json's id."""
  tokenizer_config = directory / 'tokenizer_config.json'
  if tokenizer_config.is_file():
    eos = json.loads(tokenizer_config.read_text()).get('eos_token')
    if isinstance(eos, dict):
      eos = eos.get('content')
    if eos:
      return eos
  tokenizer = json.loads((directory / 'tokenizer.json').read_text())
  by_id = {t['id']: t['content'] for t in tokenizer.get('added_tokens', [])}
  if hf.get('eos_token_id') in by_id:
    return by_id[hf['eos_token_id']]
  raise UserError(f'--from={directory}: no end-of-text token found (tokenizer_config.json '
                  'eos_token or config.json eos_token_id)')


def import_model(source: pathlib.Path, workdir: pathlib.Path, config) -> None:
  """Writes `workdir` (which must not hold anything) from the model at `source`."""
  if workdir.exists() and any(workdir.iterdir()):
    raise UserError(f'--workdir={workdir} is not empty: name a new one')
  hf, tensors = pretrained.read_directory(source)
  if not (source / 'tokenizer.json').is_file():
    raise UserError(f'--from={source} has no tokenizer.json')
  family, settings = pretrained.model_settings(hf)
  max_positions = settings.pop('max_positions')
  for key, value in settings.items():
    config.model[key] = value
  if settings['position'] == 'learned' and config.model.segment_len > max_positions:
    raise UserError(f'model.segment_len {config.model.segment_len} exceeds the '
                    f'{max_positions} positions the model learned')
  config.data.tokenizer = 'huggingface'
  config.data.huggingface.tokenizer_file = str((workdir / 'tokenizer.json').resolve())
  config.data.huggingface.eos_token = _eos_token(source, hf)
  config_lib.check_ranges(config)
  workdir.mkdir(parents=True, exist_ok=True)
  try:
    shutil.copyfile(source / 'tokenizer.json', workdir / 'tokenizer.json')
    tokenizer = make_tokenizer(config.data)
    model = MemGPT(ModelConfig.from_config(config.model, tokenizer.vocab_size))
    fresh = nn.unbox(model.init(jax.random.PRNGKey(config.seed), init_tokens(model.cfg)))
    imported = pretrained.pretrained_params(family, config.model, tokenizer.vocab_size, tensors)
    params = _placed(flax.traverse_util.flatten_dict(fresh['params'], sep='/'),
                     flax.traverse_util.flatten_dict(imported, sep='/'))
    with ocp.CheckpointManager(workdir / workdir_lib.CHECKPOINTS,
                               item_names=('state', 'config')) as manager:
      manager.save(0, args=ocp.args.Composite(
          state=ocp.args.StandardSave({'params': params}),
          config=ocp.args.JsonSave(config.to_dict())))
    (workdir / workdir_lib.CONFIG).write_text(config.to_json_best_effort(indent=2) + '\n')
  except BaseException:
    shutil.rmtree(workdir, ignore_errors=True)  # nothing half-written is left
    raise


def _placed(fresh: dict, imported: dict) -> dict:
  """The model's parameters: the imported ones where the pretrained model has them
  (names and shapes checked), the fresh initialisation elsewhere."""
  for name, value in imported.items():
    if name not in fresh:
      raise UserError(f'the imported parameter {name} has no place in the model')
    if fresh[name].shape != value.shape:
      raise UserError(f'the imported parameter {name} has shape {value.shape}, the model '
                      f'{fresh[name].shape}')
  merged = {name: np.asarray(imported.get(name, value), np.float32)
            for name, value in fresh.items()}
  return flax.traverse_util.unflatten_dict(merged, sep='/')


def main(argv):
  del argv
  import_model(pathlib.Path(_FROM.value), pathlib.Path(_WORKDIR.value), _CONFIG.value)
  print(f'memgpt-import: {_FROM.value} -> {_WORKDIR.value}')


def run():
  run_main('memgpt-import', main)


if __name__ == '__main__':
  run()
