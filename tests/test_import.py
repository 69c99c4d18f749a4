"""memgpt-import: tiny random models of GPT-2's and Llama's families written here in
Hugging Face's layout (safetensors, config.json, tokenizer.json), imported, and their
logits checked against NumPy forwards written from Hugging Face's conventions on the
original tensors (Conv1D and c_attn for GPT-2, q/k/v/o and gate/up/down projections
with rotate-half rotary positions for Llama)."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import memgpt_jax
from conftest import ROOT, load_config, text_config
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


def _layernorm(x, w, b, eps=1e-5):
  centered = x - x.mean(-1, keepdims=True)
  return centered / np.sqrt((centered ** 2).mean(-1, keepdims=True) + eps) * w + b


def _attention(q, k, v):  # [L, H, Dh] each; causal
  scores = np.einsum('qhd,khd->hqk', q, k) / np.sqrt(q.shape[-1])
  scores = np.where(np.tril(np.ones(scores.shape[1:], bool)), scores, -np.inf)
  weights = np.exp(scores - scores.max(-1, keepdims=True))
  return np.einsum('hqk,khd->qhd', weights / weights.sum(-1, keepdims=True), v)


def gpt2_logits(t, ids):
  """Hugging Face GPT-2: Conv1D (x @ W + b), c_attn split q|k|v, gelu_new, tied wte."""
  x = t['wte.weight'][ids] + t['wpe.weight'][:len(ids)]
  split = lambda a: a.reshape(len(ids), HEADS, D // HEADS)
  for i in range(LAYERS):
    p = lambda n, i=i: t[f'h.{i}.{n}']
    h = _layernorm(x, p('ln_1.weight'), p('ln_1.bias'))
    q, k, v = np.split(h @ p('attn.c_attn.weight') + p('attn.c_attn.bias'), 3, axis=-1)
    a = _attention(split(q), split(k), split(v)).reshape(len(ids), D)
    x = x + a @ p('attn.c_proj.weight') + p('attn.c_proj.bias')
    h = _layernorm(x, p('ln_2.weight'), p('ln_2.bias'))
    u = h @ p('mlp.c_fc.weight') + p('mlp.c_fc.bias')
    u = 0.5 * u * (1 + np.tanh(np.sqrt(2 / np.pi) * (u + 0.044715 * u ** 3)))
    x = x + u @ p('mlp.c_proj.weight') + p('mlp.c_proj.bias')
  return _layernorm(x, t['ln_f.weight'], t['ln_f.bias']) @ t['wte.weight'].T


def llama_logits(t, ids):
  """Hugging Face Llama: y = x W^T, RMSNorm, rotate_half rotary, silu(gate) * up."""
  rms = lambda x, w: x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * w
  head = D // HEADS
  inv = 1.0 / 10000.0 ** (np.arange(0, head, 2) / head)
  angles = np.concatenate([np.arange(len(ids))[:, None] * inv] * 2, -1)[:, None]
  rotate = lambda x: np.concatenate([-x[..., head // 2:], x[..., :head // 2]], -1)
  rope = lambda x: x * np.cos(angles) + rotate(x) * np.sin(angles)
  x = t['model.embed_tokens.weight'][ids]
  for i in range(LAYERS):
    p = lambda n, i=i: t[f'model.layers.{i}.{n}']
    h = rms(x, p('input_layernorm.weight'))
    q, k, v = ((h @ p(f'self_attn.{n}_proj.weight').T).reshape(len(ids), HEADS, head)
               for n in 'qkv')
    x = x + _attention(rope(q), rope(k), v).reshape(len(ids), D) @ p('self_attn.o_proj.weight').T
    h = rms(x, p('post_attention_layernorm.weight'))
    gate = h @ p('mlp.gate_proj.weight').T
    x = x + (gate / (1 + np.exp(-gate)) * (h @ p('mlp.up_proj.weight').T)) @ \
        p('mlp.down_proj.weight').T
  return rms(x, t['model.norm.weight']) @ t['lm_head.weight'].T


FAMILIES = {'gpt2': (gpt2_directory, gpt2_logits, 'byte_level', '<|endoftext|>'),
            'llama': (llama_directory, llama_logits, 'sentencepiece_style', '</s>')}


def _source(tmp_path, family: str):
  make_directory, _, style, eos = FAMILIES[family]
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


@pytest.mark.parametrize('family, memory', [('gpt2', True), ('llama', False)])
def test_an_imported_model_computes_the_original_logits(tmp_path, family, memory):
  """Memory off, or on with its read scaled from 0: the pretrained model's logits."""
  source, tensors = _source(tmp_path, family)
  config = _imported_config()
  config.model.memory.enabled = memory
  import_model(source, tmp_path / 'out', config)
  decoder, tokenizer, config = sampling.load_decoder(tmp_path / 'out')
  assert config.model.memory.enabled is memory and config.data.tokenizer == 'huggingface'
  ids = tokenizer.encode('def add(a, b):\n    return a + b')[:LENGTH]
  log_probs, _ = decoder.feed(decoder.start(1), np.asarray(ids)[None])
  want = FAMILIES[family][1](tensors, ids)
  want = want - np.log(np.exp(want - want.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
      - want.max(-1, keepdims=True)
  np.testing.assert_allclose(np.asarray(log_probs[0]), want, atol=2e-4)


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
