"""Hugging Face model directories to workdirs and back: memgpt-import writes a workdir
the other programs read from a directory (config.json, *.safetensors, tokenizer.json),
memgpt-export writes a plain decoder's newest checkpoint as one (memgpt_jax/pretrained.py
maps the tensors)."""

import json
import pathlib
import shutil

import flax
import flax.linen as nn
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from memgpt_jax import config_lib, pretrained
from memgpt_jax.data.tokenizer import make_tokenizer
from memgpt_jax.decode import Decoder
from memgpt_jax.errors import UserError
from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.transformer import MemGPT, init_tokens
from memgpt_jax.training import workdir as workdir_lib


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


def import_model(source: pathlib.Path, workdir: pathlib.Path,
                 config: ml_collections.ConfigDict) -> None:
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


def export_model(workdir: pathlib.Path, target: pathlib.Path) -> None:
  """Writes `target` (which must not hold anything) from `workdir`'s newest checkpoint."""
  if target.exists() and any(target.iterdir()):
    raise UserError(f'--to={target} is not empty: name a new one')
  if not workdir_lib.has_checkpoint(workdir):
    raise UserError(f'{workdir} holds no checkpoint to export')
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  model, params, _, config = workdir_lib.newest_model(workdir, device)
  if config.data.tokenizer != 'huggingface':
    raise UserError(f'{workdir} uses the {config.data.tokenizer!r} tokenizer: a Hugging Face '
                    "directory needs a tokenizer.json (data.tokenizer='huggingface')")
  params = Decoder(model, {'params': params}).params['params']  # per layer
  hf_config, tensors = pretrained.export_tensors(config, params)
  target.mkdir(parents=True, exist_ok=True)
  try:
    (target / 'config.json').write_text(json.dumps(hf_config, indent=2) + '\n')
    pretrained.write_safetensors(target / 'model.safetensors', tensors)
    shutil.copyfile(config.data.huggingface.tokenizer_file, target / 'tokenizer.json')
    (target / 'tokenizer_config.json').write_text(
        json.dumps({'eos_token': config.data.huggingface.eos_token}) + '\n')
  except BaseException:
    shutil.rmtree(target, ignore_errors=True)
    raise
