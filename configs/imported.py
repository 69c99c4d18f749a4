"""A pretrained model imported by memgpt-import, and fine-tuning it.

Import:    memgpt-import --from=DIR --workdir=runs/gpt2 [--config.model.segment_len=256 ...]
           (DIR: a Hugging Face model directory you bring: config.json, *.safetensors,
           tokenizer.json; memory and pointer off unless switched on here)
Fine-tune: memgpt-train --config=configs/imported.py:runs/gpt2 --workdir=runs/gpt2_ft
           [--config.data.source=pystdlib_packages --config.data.layout=streams ...]
Sample:    memgpt-sample --workdir=runs/gpt2_ft --prompt='def '

Without an argument: the settings memgpt-import starts from (configs/default.py with
the memory and the pointer off; the import adds the model's settings and tokenizer). With a workdir
memgpt-import wrote: its config, fine-tuning from its parameters (init_from).
"""

import json
import pathlib

import ml_collections

from memgpt_jax.config_lib import load_config, with_defaults


def get_config(workdir: str = '') -> ml_collections.ConfigDict:
  if workdir:
    saved = pathlib.Path(workdir) / 'config.json'
    config = with_defaults(json.loads(saved.read_text()))
    config.init_from = str(pathlib.Path(workdir).resolve())
    return config
  config = load_config(pathlib.Path(__file__).with_name('default.py'))
  config.model.memory.enabled = False
  # Switched on, the memory's read enters times a scale that starts at 0, and the
  # pointer's mixture with a share that starts at 0: the imported model computes at
  # first exactly what the pretrained one did. The pointer's own cross-entropy teaches
  # it meanwhile, until copying pays and its share grows.
  config.model.memory.delta.read_gate = 'scaled'
  config.model.pointer.enabled = False
  config.model.pointer.mixture = 'scaled'
  config.train.pointer_aux_loss = 0.1
  return config  # memgpt-import sets the tokenizer: the model's tokenizer.json
