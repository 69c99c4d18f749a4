"""memgpt-import: tiny random models of the GPT-2, Llama and Qwen2 families written by
Hugging Face's transformers (tests/fixtures/hf_reference), imported, and their logits
checked against the ones transformers computed; and models written here in Hugging
Face's layout (safetensors, config.json, tokenizer.json) imported, fine-tuned, sampled
and exported."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import memgpt_jax
from conftest import ROOT, load_config, load_module, text_config
from memgpt_jax import config_lib, pretrained, sampling
from memgpt_jax.hf_io import export_model, import_model
from memgpt_jax.errors import UserError
from memgpt_jax.training.trainer import train_and_evaluate
from test_hf_tokenizer import STYLES

D, LAYERS, HEADS, LENGTH = 32, 2, 4, 24


def _random(shapes: dict, seed: int) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  return {name: rng.normal(0, 0.2, shape).astype(np.float32) + (1.0 if 'ln' in name and
          name.endswith('weight') else 0.0) for name, shape in shapes.items()}


def gpt2_directory(path, vocab: int):
  names = {'wte.weight': (vocab, D), 'wpe.weight': (64, D), 'ln_f.weight': (D,),
           'ln_f.bias': (D,)}
  for i in range(LAYERS):
    names |= {f'h.{i}.ln_1.weight': (D,), f'h.{i}.ln_1.bias': (D,),
              f'h.{i}.attn.c_attn.weight': (D, 3 * D), f'h.{i}.attn.c_attn.bias': (3 * D,),
              f'h.{i}.attn.c_proj.weight': (D, D), f'h.{i}.attn.c_proj.bias': (D,),
              f'h.{i}.ln_2.weight': (D,), f'h.{i}.ln_2.bias': (D,),
              f'h.{i}.mlp.c_fc.weight': (D, 4 * D), f'h.{i}.mlp.c_fc.bias': (4 * D,),
              f'h.{i}.mlp.c_proj.weight': (4 * D, D), f'h.{i}.mlp.c_proj.bias': (D,)}
  tensors = _random(names, 0)
  pretrained.write_safetensors(path / 'model.safetensors', tensors)
  (path / 'config.json').write_text(json.dumps({
      'model_type': 'gpt2', 'n_embd': D, 'n_layer': LAYERS, 'n_head': HEADS,
      'n_positions': 64, 'layer_norm_epsilon': 1e-5, 'vocab_size': vocab}))
  return tensors


def llama_directory(path, vocab: int, kv_heads: int = HEADS):
  names = {'model.embed_tokens.weight': (vocab, D), 'model.norm.weight': (D,),
           'lm_head.weight': (vocab, D)}
  for i in range(LAYERS):
    layer = f'model.layers.{i}.'
    names |= {layer + 'input_layernorm.weight': (D,),
              layer + 'self_attn.q_proj.weight': (D, D),
              layer + 'self_attn.k_proj.weight': (D * kv_heads // HEADS, D),
              layer + 'self_attn.v_proj.weight': (D * kv_heads // HEADS, D),
              layer + 'self_attn.o_proj.weight': (D, D),
              layer + 'post_attention_layernorm.weight': (D,),
              layer + 'mlp.gate_proj.weight': (48, D), layer + 'mlp.up_proj.weight': (48, D),
              layer + 'mlp.down_proj.weight': (D, 48)}
  tensors = _random(names, 1)
  pretrained.write_safetensors(path / 'model.safetensors', tensors)
  (path / 'config.json').write_text(json.dumps({
      'model_type': 'llama', 'hidden_size': D, 'num_hidden_layers': LAYERS,
      'num_attention_heads': HEADS, 'num_key_value_heads': kv_heads,
      'intermediate_size': 48, 'rms_norm_eps': 1e-5, 'rope_theta': 10000.0,
      'max_position_embeddings': 256, 'tie_word_embeddings': False, 'vocab_size': vocab}))
  return tensors


FAMILIES = {'gpt2': (gpt2_directory, 'byte_level', '<|endoftext|>'),
            'llama': (llama_directory, 'sentencepiece_style', '</s>')}
REFERENCE_LOGITS = load_module('experiments/reference_logits.py')


def _source(tmp_path, family: str):
  make_directory, style, eos = FAMILIES[family]
  source = tmp_path / 'hf'
  source.mkdir()
  STYLES[style][0](source / 'tokenizer.json')
  (source / 'tokenizer_config.json').write_text(json.dumps({'eos_token': eos}))
  vocab = json.loads((source / 'tokenizer.json').read_text())
  size = len(vocab['model']['vocab']) + sum(
      t['id'] >= len(vocab['model']['vocab']) for t in vocab['added_tokens'])
  return source, make_directory(source, size)


def _imported_config(memory: bool = False):
  config = load_config('imported')
  config.model.segment_len, config.model.num_segments = 32, 2
  config.model.memory.enabled = config.model.pointer.enabled = memory
  return config


@pytest.mark.parametrize('family, memory', [('gpt2', True), ('gpt2', False),
                                            ('llama', False), ('qwen2', True)])
def test_an_imported_model_computes_the_reference_logits(tmp_path, family, memory):
  """Memory and pointer off, or on from a zero contribution: the logits of Hugging Face's
  implementation (GPT-2: learned positions, LayerNorm, tied; Llama: rotary, RMSNorm,
  SwiGLU, untied; Qwen2: Llama's with q/k/v biases, tied)."""
  result = REFERENCE_LOGITS.compare(family, memory, tmp_path / 'out')
  model = result['config'].model
  assert model.memory.enabled is model.pointer.enabled is memory
  assert result['config'].data.tokenizer == 'huggingface'
  assert result['want'].std(-1).mean() > 0.5  # far more than the tolerance apart
  np.testing.assert_allclose(result['got'], result['want'], atol=2e-5)


def test_an_imported_model_with_memory_fine_tunes_and_samples(tmp_path, data_dir):
  """Memory and pointer switched on at import (the new parts from their
  initialisation): configs/imported.py:OUT fine-tunes from it, and the result samples."""
  source, _ = _source(tmp_path, 'gpt2')
  out = tmp_path / 'out'
  import_model(source, out, _imported_config(memory=True))
  config = config_lib.load_config(f'{ROOT / "configs" / "imported.py"}:{out}')
  assert config.init_from == str(out.resolve()) and config.model.memory.enabled
  small = text_config(data_dir, tmp_path)
  config.train = small.train
  config.train.update(num_steps=2, eval_every=2, checkpoint_every=2)
  config.data.update(source='text', paths=small.data.paths, tfds_data_dir=data_dir)
  train_and_evaluate(config, tmp_path / 'tuned')
  lm = memgpt_jax.load(tmp_path / 'tuned')
  assert isinstance(lm.generate('def ', 4), str)


def test_what_cannot_be_imported_is_one_line(tmp_path):
  source, _ = _source(tmp_path, 'llama')
  llama_directory(source, 300, kv_heads=2)
  with pytest.raises(UserError, match='2 key-value heads for 4 query heads'):
    import_model(source, tmp_path / 'out', _imported_config())
  assert not (tmp_path / 'out').exists()
  (tmp_path / 'full').mkdir()
  (tmp_path / 'full' / 'keep.txt').write_text('mine')
  with pytest.raises(UserError, match='is not empty'):
    import_model(source, tmp_path / 'full', _imported_config())
  assert (tmp_path / 'full' / 'keep.txt').read_text() == 'mine'
  with pytest.raises(UserError, match='has no config.json'):
    import_model(tmp_path / 'full', tmp_path / 'out', _imported_config())


@pytest.mark.parametrize('family', FAMILIES)
def test_export_writes_back_the_tensors_it_imported(tmp_path, family):
  """Import, export: the same tensors under the same names (GPT-2's position table cut
  to the segment), a config.json the import reads again; a model with memory is
  refused in one line."""
  source, tensors = _source(tmp_path, family)
  import_model(source, tmp_path / 'in', _imported_config())
  export_model(tmp_path / 'in', tmp_path / 'back')
  hf, exported = pretrained.read_directory(tmp_path / 'back')
  assert pretrained.model_settings(hf)[0] == family and exported.keys() == tensors.keys()
  for name, tensor in tensors.items():
    np.testing.assert_array_equal(exported[name], tensor[:exported[name].shape[0]])
  import_model(tmp_path / 'back', tmp_path / 'again', _imported_config())
  import_model(source, tmp_path / 'memory', _imported_config(memory=True))
  with pytest.raises(UserError, match='has a memory or a pointer'):
    export_model(tmp_path / 'memory', tmp_path / 'refused')
  assert not (tmp_path / 'refused').exists()


def test_the_programs_import_and_export(tmp_path):
  """memgpt-import as a user runs it: dotted flags reach the config; a second import
  into the same workdir is one line, status 2 (memgpt-export shares its entry point's
  code: cli/common.run_main)."""
  source, _ = _source(tmp_path, 'gpt2')
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  program = lambda name, *args: subprocess.run(
      [sys.executable, '-m', f'memgpt_jax.cli.{name}', *args], cwd=ROOT, env=env,
      capture_output=True, text=True, timeout=300)
  done = program('import_model', f'--from={source}', f'--workdir={tmp_path / "lm"}',
                 '--config.model.segment_len=16')
  assert done.returncode == 0, done.stderr
  assert json.loads((tmp_path / 'lm' / 'config.json').read_text())['model']['segment_len'] == 16
  again = program('import_model', f'--from={source}', f'--workdir={tmp_path / "lm"}')
  assert again.returncode == 2
  assert again.stderr.strip().splitlines()[-1] == (
      f'memgpt-import: error: --workdir={tmp_path / "lm"} is not empty: name a new one')
