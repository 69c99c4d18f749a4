"""Model FLOPs per trained token, memory and pointer included, and per-device peaks.

MFU = (model FLOPs per token * tokens per second) / peak FLOP/s of the devices used.
A multiply-add counts as 2 FLOPs; training = forward + backward = 3 x forward.
Attention is counted over the full window the dense kernel computes (T + S keys). An
encoder-decoder's tokens are its targets: the encoder's work is shared out over them. The
delta memory's write is counted in its recurrent form (per token: S^T k and the rank-1
update), whichever form runs it.
"""

from memgpt_jax.model.config import ModelConfig

# Dense peak FLOP/s per chip by device_kind prefix (vendor datasheets). float32 on GPUs
# is the TF32 tensor-core peak: XLA's default matmul precision there.
PEAK_FLOPS = {
    'NVIDIA H200': {'bfloat16': 989e12, 'float32': 494e12},
    'NVIDIA H100 PCIe': {'bfloat16': 756e12, 'float32': 378e12},
    'NVIDIA H100': {'bfloat16': 989e12, 'float32': 494e12},
    'NVIDIA A100': {'bfloat16': 312e12, 'float32': 156e12},
    'NVIDIA L4': {'bfloat16': 121e12, 'float32': 60e12},
    'TPU v4': {'bfloat16': 275e12},
    'TPU v5 lite': {'bfloat16': 197e12},
    'TPU v5p': {'bfloat16': 459e12},
    'TPU v5': {'bfloat16': 459e12},
    'TPU v6 lite': {'bfloat16': 918e12},
}


def peak_flops(device_kind: str, dtype: str) -> float | None:
  """Peak of one device, or None where the table has none (e.g. CPUs)."""
  for prefix in sorted(PEAK_FLOPS, key=len, reverse=True):  # most specific first
    if device_kind.startswith(prefix):
      return PEAK_FLOPS[prefix].get(dtype)
  return None


def _slot_memory_flops(cfg: ModelConfig) -> float:
  """Per token: once per segment, shared by its T tokens, the read's slot keys/values
  and the write (slot queries, token keys/values, cross-attention, output, gate)."""
  d, window, slots = cfg.d_model, cfg.segment_len, cfg.memory_slots
  per_segment = 4 * slots * d * d  # read: K, V of the slots
  per_segment += 2 * slots * d * d + 4 * window * d * d + 4 * slots * window * d
  per_segment += 2 * slots * d * d + (4 * slots * d * d if cfg.slots.gate == 'gru' else 0)
  return per_segment / window


def _delta_memory_flops(cfg: ModelConfig) -> float:
  """Per token: the read (query, q S, gate) and the write (key, value, strength,
  decay, and the delta rule's S^T k and rank-1 update)."""
  d, heads, delta = cfg.d_model, cfg.num_heads, cfg.delta
  dk, dv = delta.key_dim, delta.value_dim
  read = 2 * d * heads * dk + 2 * heads * dk * dv
  if dv != cfg.head_dim:
    read += 2 * heads * dv * cfg.head_dim
  if delta.read_gate == 'token':
    read += 2 * d * heads
  write = 2 * (2 * d if delta.key_shift else d) * heads * dk + 2 * d * heads * dv
  write += 4 * heads * dk * dv
  if delta.write_strength in ('learned', 'sparse'):
    write += 2 * d * heads
  elif delta.write_strength == 'pointer':
    write += 2 * cfg.pointer_heads * cfg.pointer_head_dim * heads
  if delta.decay == 'learned':
    write += 2 * d * heads + heads * dk * dv
  return read + write


def _blocks_flops(cfg: ModelConfig) -> float:
  """Per token, the blocks of one stack (the decoder's or the encoder's)."""
  d, window = cfg.d_model, cfg.segment_len
  mlp = (6 if cfg.mlp_type == 'swiglu' else 4) * d * cfg.mlp_dim
  memory = _delta_memory_flops if cfg.memory_kind == 'delta' else _slot_memory_flops
  flops = 0.0
  for layer in range(cfg.num_layers):
    has_memory = cfg.has_memory(layer)
    keys = window + (cfg.memory_slots if has_memory else 0)
    flops += 8 * d * d + mlp + 4 * d * keys  # projections, MLP, scores + values
    if has_memory:
      flops += memory(cfg)
  return flops


def _encoder_flops(cfg: ModelConfig) -> float:
  """Per target token: each decoder layer's cross-attention (query, output, scores and
  values over the source positions it sees), and the encoder's work on the source (its
  blocks, every decoder layer's source keys and values, and the pointer's source keys)
  shared out over the targets: encoder.num_segments source tokens to num_segments
  target tokens."""
  d = cfg.d_model
  cross = cfg.num_layers * (4 * d * d + 4 * d * cfg.source_len)
  per_source_token = _blocks_flops(cfg.encoder_config) + cfg.num_layers * 4 * d * d
  if cfg.pointer_enabled:
    per_source_token += 2 * d * cfg.pointer_heads * cfg.pointer_head_dim
  return cross + per_source_token * cfg.encoder_segments / cfg.num_segments


def forward_flops_per_token(cfg: ModelConfig) -> float:
  d = cfg.d_model
  flops = _blocks_flops(cfg)
  if cfg.arch == 'encoder_decoder':
    flops += _encoder_flops(cfg)
  if cfg.pointer_enabled:
    heads_dim = cfg.pointer_heads * cfg.pointer_head_dim
    flops += 4 * d * heads_dim + 2 * heads_dim * cfg.num_candidates + 2 * d
  return flops + 2 * d * cfg.vocab_size  # output logits


def train_flops_per_token(cfg: ModelConfig) -> float:
  return 3 * forward_flops_per_token(cfg)
