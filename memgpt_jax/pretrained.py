"""Pretrained language models from Hugging Face model directories (config.json,
*.safetensors, tokenizer.json), as MemGPT parameters and a config: GPT-2's family
(learned positions, LayerNorm, GELU, biases, tied embeddings) and Llama's (rotary
positions, RMSNorm, SwiGLU, an untied output; Qwen2's query, key and value biases).
Nothing is downloaded: the user brings the directory.

The memory and the pointer are the user's to switch on (model.memory.enabled,
model.pointer.enabled); the imported parameters are the plain decoder's, the new
parts start from their initialisation.
"""

import json
import pathlib
from typing import Any

import jax
import ml_dtypes
import ml_collections
import numpy as np

from memgpt_jax.errors import UserError

# safetensors' dtype names -> numpy's.
_DTYPES = {'F64': np.float64, 'F32': np.float32, 'F16': np.float16,
           'BF16': ml_dtypes.bfloat16, 'I64': np.int64, 'I32': np.int32, 'U8': np.uint8,
           'BOOL': np.bool_}
FAMILIES = {'gpt2': 'gpt2', 'llama': 'llama', 'mistral': 'llama', 'qwen2': 'llama'}


def read_safetensors(path: pathlib.Path) -> dict[str, np.ndarray]:
  """Every tensor of a .safetensors file: an 8-byte little-endian header length, a
  JSON header {name: {dtype, shape, data_offsets}}, then the tensors' bytes."""
  data = path.read_bytes()
  try:
    length = int.from_bytes(data[:8], 'little')
    header = json.loads(data[8:8 + length])
  except (ValueError, UnicodeDecodeError) as error:
    raise UserError(f'{path} is not a safetensors file ({error})') from None
  start = 8 + length
  tensors = {}
  for name, spec in header.items():
    if name == '__metadata__':
      continue
    if spec['dtype'] not in _DTYPES:
      raise UserError(f'{path}: tensor {name} has dtype {spec["dtype"]}, which is not read')
    begin, end = spec['data_offsets']
    tensors[name] = np.frombuffer(data[start + begin:start + end],
                                  _DTYPES[spec['dtype']]).reshape(spec['shape'])
  return tensors


def read_directory(directory: pathlib.Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """(config.json, every tensor of its *.safetensors files) of a model directory."""
  config_file = directory / 'config.json'
  if not config_file.is_file():
    raise UserError(f'--from={directory} has no config.json: name a Hugging Face model '
                    'directory (config.json, *.safetensors, tokenizer.json)')
  files = sorted(directory.glob('*.safetensors'))
  if not files:
    raise UserError(f'--from={directory} has no *.safetensors file (a PyTorch .bin '
                    'checkpoint is not read: save it with safe_serialization=True)')
  tensors = {}
  for file in files:
    tensors.update(read_safetensors(file))
  return json.loads(config_file.read_text()), tensors


def model_settings(hf: dict[str, Any]) -> tuple[str, dict[str, Any]]:
  """(family, {model.* setting: value}) of a Hugging Face config.json."""
  family = FAMILIES.get(hf.get('model_type'))
  if family is None:
    raise UserError(f'config.json has model_type {hf.get("model_type")!r}: the import '
                    f'reads {", ".join(sorted(FAMILIES))}')
  if family == 'gpt2':
    return family, {
        'd_model': hf['n_embd'], 'num_layers': hf['n_layer'], 'num_heads': hf['n_head'],
        'mlp_dim': hf.get('n_inner') or 4 * hf['n_embd'], 'mlp_type': 'gelu',
        'norm_type': 'layernorm', 'norm_epsilon': hf.get('layer_norm_epsilon', 1e-5),
        'position': 'learned', 'tie_embeddings': True, 'bias': 'all',
        'max_positions': hf['n_positions']}
  heads, kv_heads = hf['num_attention_heads'], hf.get('num_key_value_heads') or \
      hf['num_attention_heads']
  if kv_heads != heads:
    raise UserError(f'config.json has {kv_heads} key-value heads for {heads} query heads '
                    '(grouped-query attention), which the model does not have yet')
  if hf.get('rope_scaling'):
    raise UserError(f'config.json scales its rotary positions ({hf["rope_scaling"]}), which '
                    'the model does not do')
  if hf.get('head_dim', hf['hidden_size'] // heads) != hf['hidden_size'] // heads:
    raise UserError('config.json sets head_dim apart from hidden_size / num_attention_heads')
  return family, {
      'd_model': hf['hidden_size'], 'num_layers': hf['num_hidden_layers'],
      'num_heads': heads, 'mlp_dim': hf['intermediate_size'], 'mlp_type': 'swiglu',
      'norm_type': 'rmsnorm', 'norm_epsilon': hf.get('rms_norm_eps', 1e-6),
      'position': 'rope', 'rope_base': float(hf.get('rope_theta', 10_000.0)),
      'tie_embeddings': bool(hf.get('tie_word_embeddings', False)),
      'bias': 'qkv' if hf.get('model_type') == 'qwen2' else (
          'all' if hf.get('attention_bias') else 'none'),
      'max_positions': hf.get('max_position_embeddings', 0)}


def _taker(tensors: dict[str, np.ndarray]):
  """take(name): the tensor as float32, each used once (the rest are reported)."""
  used = set()

  def take(name: str) -> np.ndarray:
    if name not in tensors:
      raise UserError(f'the checkpoint has no tensor {name}')
    used.add(name)
    return np.asarray(tensors[name], np.float32)
  return take, used


def _gpt2(take, cfg, layer_names) -> dict:
  heads, head_dim, d = cfg.num_heads, cfg.d_model // cfg.num_heads, cfg.d_model
  params = {'embed': {'embedding': take(layer_names('wte.weight'))},
            'positions': {'table': take(layer_names('wpe.weight'))[:cfg.segment_len]},
            'final_norm': {'scale': take(layer_names('ln_f.weight')),
                           'bias': take(layer_names('ln_f.bias'))}}
  for i in range(cfg.num_layers):
    p = lambda name, i=i: take(layer_names(f'h.{i}.{name}'))
    qkv, qkv_bias = p('attn.c_attn.weight'), p('attn.c_attn.bias')  # x @ W: [d, 3d]
    attention = {
        name: {'kernel': qkv[:, j * d:(j + 1) * d].reshape(d, heads, head_dim),
               'bias': qkv_bias[j * d:(j + 1) * d].reshape(heads, head_dim)}
        for j, name in enumerate(('query', 'key', 'value'))}
    attention['out'] = {'kernel': p('attn.c_proj.weight').reshape(heads, head_dim, d),
                        'bias': p('attn.c_proj.bias')}
    params[f'blocks_{i}'] = {
        'attention_norm': {'scale': p('ln_1.weight'), 'bias': p('ln_1.bias')},
        'attention': attention,
        'mlp_norm': {'scale': p('ln_2.weight'), 'bias': p('ln_2.bias')},
        'mlp': {'w1': {'kernel': p('mlp.c_fc.weight'), 'bias': p('mlp.c_fc.bias')},
                'w2': {'kernel': p('mlp.c_proj.weight'), 'bias': p('mlp.c_proj.bias')}}}
  return params


def _llama(take, cfg, tensors) -> dict:
  heads, head_dim, d = cfg.num_heads, cfg.d_model // cfg.num_heads, cfg.d_model
  params = {'embed': {'embedding': take('model.embed_tokens.weight')},
            'final_norm': {'scale': take('model.norm.weight')}}
  if not cfg.tie_embeddings:
    params['lm_head'] = {'kernel': take('lm_head.weight').T}  # y = x W^T
  for i in range(cfg.num_layers):
    p = lambda name, i=i: take(f'model.layers.{i}.{name}')
    attention = {}
    for name, hf_name in (('query', 'q_proj'), ('key', 'k_proj'), ('value', 'v_proj')):
      kernel = p(f'self_attn.{hf_name}.weight').T
      attention[name] = {'kernel': kernel.reshape(d, heads, head_dim)}
      if f'model.layers.{i}.self_attn.{hf_name}.bias' in tensors:
        attention[name]['bias'] = p(f'self_attn.{hf_name}.bias').reshape(heads, head_dim)
    attention['out'] = {'kernel': p('self_attn.o_proj.weight').T.reshape(heads, head_dim, d)}
    params[f'blocks_{i}'] = {
        'attention_norm': {'scale': p('input_layernorm.weight')},
        'attention': attention,
        'mlp_norm': {'scale': p('post_attention_layernorm.weight')},
        'mlp': {'w1': {'kernel': p('mlp.gate_proj.weight').T},
                'w3': {'kernel': p('mlp.up_proj.weight').T},
                'w2': {'kernel': p('mlp.down_proj.weight').T}}}
  return params


def pretrained_params(family: str, cfg: ml_collections.ConfigDict, vocab_size: int,
                      tensors: dict[str, np.ndarray]) -> dict:
  """The plain decoder's parameters ({name: float32 array}, MemGPT's tree) of a
  checkpoint's tensors; the embedding cut to the tokenizer's vocabulary."""
  take, used = _taker(tensors)
  if family == 'gpt2':
    prefix = 'transformer.' if any(n.startswith('transformer.') for n in tensors) else ''
    params = _gpt2(take, cfg, lambda name: prefix + name)
  else:
    params = _llama(take, cfg, tensors)
  rows = params['embed']['embedding'].shape[0]
  if rows < vocab_size:
    raise UserError(f'the embedding has {rows} rows for a tokenizer of {vocab_size} tokens')
  params['embed']['embedding'] = params['embed']['embedding'][:vocab_size]
  if 'lm_head' in params:
    params['lm_head']['kernel'] = params['lm_head']['kernel'][:, :vocab_size]
  left = sorted(n for n in tensors if n not in used and 'rotary_emb' not in n
                and not n.endswith('.attn.bias') and not n.endswith('.attn.masked_bias')
                and n != 'lm_head.weight')
  if left:
    raise UserError('the checkpoint has tensors the import does not place: '
                    + ', '.join(left[:3]))
  return params


def _gpt2_tensors(params: dict, cfg) -> dict[str, np.ndarray]:
  """GPT-2's tensors (Hugging Face names, Conv1D layout) of a plain decoder's params."""
  d = cfg.d_model
  tensors = {'wte.weight': params['embed']['embedding'],
             'wpe.weight': params['positions']['table'],
             'ln_f.weight': params['final_norm']['scale'],
             'ln_f.bias': params['final_norm']['bias']}
  for i in range(cfg.num_layers):
    block, prefix = params[f'blocks_{i}'], f'h.{i}.'
    attention = block['attention']
    tensors |= {
        prefix + 'ln_1.weight': block['attention_norm']['scale'],
        prefix + 'ln_1.bias': block['attention_norm']['bias'],
        prefix + 'attn.c_attn.weight': np.concatenate(
            [attention[n]['kernel'].reshape(d, d) for n in ('query', 'key', 'value')], 1),
        prefix + 'attn.c_attn.bias': np.concatenate(
            [attention[n]['bias'].reshape(d) for n in ('query', 'key', 'value')]),
        prefix + 'attn.c_proj.weight': attention['out']['kernel'].reshape(d, d),
        prefix + 'attn.c_proj.bias': attention['out']['bias'],
        prefix + 'ln_2.weight': block['mlp_norm']['scale'],
        prefix + 'ln_2.bias': block['mlp_norm']['bias'],
        prefix + 'mlp.c_fc.weight': block['mlp']['w1']['kernel'],
        prefix + 'mlp.c_fc.bias': block['mlp']['w1']['bias'],
        prefix + 'mlp.c_proj.weight': block['mlp']['w2']['kernel'],
        prefix + 'mlp.c_proj.bias': block['mlp']['w2']['bias']}
  return tensors


def _llama_tensors(params: dict, cfg) -> dict[str, np.ndarray]:
  """Llama's tensors (Hugging Face names, y = x W^T) of a plain decoder's params."""
  d = cfg.d_model
  tensors = {'model.embed_tokens.weight': params['embed']['embedding'],
             'model.norm.weight': params['final_norm']['scale']}
  if 'lm_head' in params:
    tensors['lm_head.weight'] = params['lm_head']['kernel'].T
  for i in range(cfg.num_layers):
    block, prefix = params[f'blocks_{i}'], f'model.layers.{i}.'
    attention = block['attention']
    for name, hf_name in (('query', 'q_proj'), ('key', 'k_proj'), ('value', 'v_proj')):
      kernel = attention[name]['kernel'].reshape(d, d)
      tensors[prefix + f'self_attn.{hf_name}.weight'] = kernel.T
      if 'bias' in attention[name]:
        tensors[prefix + f'self_attn.{hf_name}.bias'] = attention[name]['bias'].reshape(d)
    tensors |= {
        prefix + 'self_attn.o_proj.weight': attention['out']['kernel'].reshape(d, d).T,
        prefix + 'input_layernorm.weight': block['attention_norm']['scale'],
        prefix + 'post_attention_layernorm.weight': block['mlp_norm']['scale'],
        prefix + 'mlp.gate_proj.weight': block['mlp']['w1']['kernel'].T,
        prefix + 'mlp.up_proj.weight': block['mlp']['w3']['kernel'].T,
        prefix + 'mlp.down_proj.weight': block['mlp']['w2']['kernel'].T}
  return tensors


def export_tensors(config: ml_collections.ConfigDict, params: dict) -> tuple[dict, dict]:
  """(config.json, tensors) of a plain decoder in the Hugging Face format it fits:
  GPT-2's family or Llama's; UserError (one line) for a model neither describes."""
  cfg = config.model
  if cfg.memory.enabled or cfg.pointer.enabled:
    raise UserError('the model has a memory or a pointer, which Hugging Face formats do '
                    'not hold: export a model with both off')
  params = jax.tree.map(lambda x: np.asarray(x, np.float32), params)
  gpt2 = dict(mlp_type='gelu', norm_type='layernorm', position='learned', bias='all',
              tie_embeddings=True)
  llama = dict(mlp_type='swiglu', norm_type='rmsnorm', position='rope')
  vocab = params['embed']['embedding'].shape[0]
  if all(cfg[k] == v for k, v in gpt2.items()):
    return {'model_type': 'gpt2', 'n_embd': cfg.d_model, 'n_layer': cfg.num_layers,
            'n_head': cfg.num_heads, 'n_inner': cfg.mlp_dim, 'n_positions': cfg.segment_len,
            'layer_norm_epsilon': cfg.norm_epsilon, 'vocab_size': vocab,
            'activation_function': 'gelu_new'}, _gpt2_tensors(params, cfg)
  if all(cfg[k] == v for k, v in llama.items()) and cfg.bias in ('none', 'qkv'):
    return {'model_type': 'qwen2' if cfg.bias == 'qkv' else 'llama',
            'hidden_size': cfg.d_model, 'num_hidden_layers': cfg.num_layers,
            'num_attention_heads': cfg.num_heads, 'num_key_value_heads': cfg.num_heads,
            'intermediate_size': cfg.mlp_dim, 'rms_norm_eps': cfg.norm_epsilon,
            'rope_theta': cfg.rope_base, 'max_position_embeddings': cfg.segment_len,
            'tie_word_embeddings': cfg.tie_embeddings, 'vocab_size': vocab,
            'hidden_act': 'silu'}, _llama_tensors(params, cfg)
  raise UserError('the model is neither GPT-2 shaped (learned positions, LayerNorm, GELU, '
                  'biases, tied embeddings) nor Llama shaped (rotary positions, RMSNorm, '
                  'SwiGLU): it has no Hugging Face format to export to')


def write_safetensors(path: pathlib.Path, tensors: dict[str, np.ndarray]):
  """tensors as a .safetensors file of float32 (see read_safetensors)."""
  header, offset, chunks = {}, 0, []
  for name in sorted(tensors):
    data = np.ascontiguousarray(tensors[name], np.float32).tobytes()
    header[name] = {'dtype': 'F32', 'shape': list(tensors[name].shape),
                    'data_offsets': [offset, offset + len(data)]}
    offset += len(data)
    chunks.append(data)
  blob = json.dumps(header).encode()
  path.write_bytes(len(blob).to_bytes(8, 'little') + blob + b''.join(chunks))
