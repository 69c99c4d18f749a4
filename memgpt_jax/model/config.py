"""A frozen, validated view of `config.model`, hashable so Flax modules can hold it."""

import dataclasses
import functools
import operator

import jax.numpy as jnp
import ml_collections

from memgpt_jax.errors import ConfigError

_CHOICES = {
    'mlp_type': ('swiglu', 'gelu'),
    'norm_type': ('rmsnorm', 'layernorm'),
    'position': ('rope', 'sinusoidal', 'learned', 'none'),
    'dtype': ('float32', 'bfloat16'),
    'memory.kind': ('delta', 'slots'),
    'memory.slots.gate': ('fixed', 'gru', 'none'),
    'memory.delta.feature_map': ('silu', 'elu_plus_one', 'identity'),
    'memory.delta.write_strength': ('learned', 'sparse', 'fixed', 'pointer'),
    'memory.delta.decay': ('none', 'learned'),
    'memory.delta.read_gate': ('token', 'head', 'none'),
    'memory.delta.write_form': ('auto', 'scan', 'chunked'),
}


@dataclasses.dataclass(frozen=True)
class SlotsConfig:
  """model.memory.slots: S learned slots, written by cross-attention (model/slot_memory.py)."""
  num_slots: int
  gate: str
  gate_bias_init: float


@dataclasses.dataclass(frozen=True)
class DeltaConfig:
  """model.memory.delta: the delta-rule associative memory (model/delta_memory.py)."""
  key_dim: int
  value_dim: int
  feature_map: str
  key_shift: bool
  write_strength: str
  decay: str
  decay_init: float
  read_gate: str
  read_gate_bias_init: float
  write_form: str
  chunk_size: int


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  vocab_size: int
  d_model: int
  num_layers: int
  num_heads: int
  mlp_dim: int
  mlp_type: str
  norm_type: str
  position: str
  rope_base: float
  segment_len: int
  num_segments: int
  tie_embeddings: bool
  dropout_rate: float
  init_std: float
  dtype: str
  remat: bool
  bidirectional_prefix: bool
  memory_enabled: bool
  memory_kind: str
  memory_layers: tuple[int, ...]
  bptt_segments: int
  slots: SlotsConfig
  delta: DeltaConfig
  pointer_enabled: bool
  pointer_heads: int
  pointer_head_dim: int
  pointer_cache_len: int
  pointer_copy_inputs: bool

  @property
  def head_dim(self) -> int:
    return self.d_model // self.num_heads

  @property
  def seq_len(self) -> int:
    return self.segment_len * self.num_segments

  @property
  def compute_dtype(self):
    return jnp.dtype(self.dtype)

  @property
  def num_candidates(self) -> int:
    """Pointer candidates per position: the cache of earlier segments, then this one."""
    return self.pointer_cache_len + self.segment_len

  @property
  def memory_slots(self) -> int:
    """Slots the attention reads beside the window: S for slot memory, else none."""
    return self.slots.num_slots if self.memory_enabled and self.memory_kind == 'slots' else 0

  def has_memory(self, layer: int) -> bool:
    return self.memory_enabled and layer in self.memory_layers

  @classmethod
  def from_config(cls, model: ml_collections.ConfigDict, vocab_size: int) -> 'ModelConfig':
    """Validates `config.model` and turns it into a ModelConfig (ConfigError on bad values)."""
    for key, choices in _CHOICES.items():
      value = functools.reduce(operator.getitem, key.split('.'), model)
      if value not in choices:
        raise ConfigError(f'model.{key}={value!r} is not one of {", ".join(choices)}')
    positive = {
        'd_model': model.d_model, 'num_layers': model.num_layers,
        'num_heads': model.num_heads, 'mlp_dim': model.mlp_dim,
        'segment_len': model.segment_len, 'num_segments': model.num_segments,
    }
    if model.pointer.enabled:
      positive |= {'pointer.num_heads': model.pointer.num_heads,
                   'pointer.head_dim': model.pointer.head_dim}
    for name, value in positive.items():
      if int(value) < 1:
        raise ConfigError(f'model.{name}={value} must be at least 1')
    if model.d_model % model.num_heads:
      raise ConfigError(f'model.num_heads={model.num_heads} does not divide '
                        f'model.d_model={model.d_model}')
    if model.position == 'rope' and (model.d_model // model.num_heads) % 2:
      raise ConfigError('rope needs an even head dimension (d_model / num_heads)')
    memory, slots, delta = model.memory, model.memory.slots, model.memory.delta
    if slots.num_slots < 0:
      raise ConfigError(f'model.memory.slots.num_slots={slots.num_slots} must be >= 0')
    if memory.enabled and memory.kind == 'slots' and slots.num_slots == 0:
      raise ConfigError('model.memory.slots.num_slots=0 with memory.enabled=True: '
                        'set num_slots >= 1 or memory.enabled=False')
    for name in ('key_dim', 'value_dim'):
      if delta[name] < 0:
        raise ConfigError(f'model.memory.delta.{name}={delta[name]} must be >= 0 '
                          '(0: the head dimension)')
    if delta.chunk_size < 1:
      raise ConfigError(f'model.memory.delta.chunk_size={delta.chunk_size} must be >= 1')
    if not 0.0 < delta.decay_init < 1.0:
      raise ConfigError(f'model.memory.delta.decay_init={delta.decay_init} must be in (0, 1)')
    if (memory.enabled and memory.kind == 'delta' and delta.write_strength == 'pointer'
        and not model.pointer.enabled):
      raise ConfigError("model.memory.delta.write_strength='pointer' needs "
                        'model.pointer.enabled=True')
    if memory.bptt_segments < 0:
      raise ConfigError(f'model.memory.bptt_segments={memory.bptt_segments} must be >= 0')
    if model.pointer.cache_len < 0:
      raise ConfigError(f'model.pointer.cache_len={model.pointer.cache_len} must be >= 0')
    if not model.init_std > 0:
      raise ConfigError(f'model.init_std={model.init_std} must be > 0')
    if not 0.0 <= model.dropout_rate < 1.0:
      raise ConfigError(f'model.dropout_rate={model.dropout_rate} must be in [0, 1)')
    head_dim = int(model.d_model) // int(model.num_heads)
    return cls(
        vocab_size=int(vocab_size),
        d_model=int(model.d_model),
        num_layers=int(model.num_layers),
        num_heads=int(model.num_heads),
        mlp_dim=int(model.mlp_dim),
        mlp_type=model.mlp_type,
        norm_type=model.norm_type,
        position=model.position,
        rope_base=float(model.rope_base),
        segment_len=int(model.segment_len),
        num_segments=int(model.num_segments),
        tie_embeddings=bool(model.tie_embeddings),
        dropout_rate=float(model.dropout_rate),
        init_std=float(model.init_std),
        dtype=model.dtype,
        remat=bool(model.remat),
        bidirectional_prefix=bool(model.bidirectional_prefix),
        memory_enabled=bool(memory.enabled),
        memory_kind=memory.kind,
        memory_layers=_parse_layers(memory.layers, int(model.num_layers)),
        bptt_segments=int(memory.bptt_segments),
        slots=SlotsConfig(num_slots=int(slots.num_slots), gate=slots.gate,
                          gate_bias_init=float(slots.gate_bias_init)),
        delta=DeltaConfig(
            key_dim=int(delta.key_dim) or head_dim, value_dim=int(delta.value_dim) or head_dim,
            feature_map=delta.feature_map, key_shift=bool(delta.key_shift),
            write_strength=delta.write_strength, decay=delta.decay,
            decay_init=float(delta.decay_init), read_gate=delta.read_gate,
            read_gate_bias_init=float(delta.read_gate_bias_init),
            write_form=delta.write_form, chunk_size=int(delta.chunk_size)),
        pointer_enabled=bool(model.pointer.enabled),
        pointer_heads=int(model.pointer.num_heads),
        pointer_head_dim=int(model.pointer.head_dim),
        pointer_cache_len=int(model.pointer.cache_len),
        pointer_copy_inputs=bool(model.pointer.copy_inputs),
    )


def _parse_layers(spec: str, num_layers: int) -> tuple[int, ...]:
  """'all' or '0,2,3' -> sorted layer indices."""
  spec = str(spec).strip()
  if spec == 'all':
    return tuple(range(num_layers))
  try:
    layers = sorted({int(part) for part in spec.split(',') if part.strip()})
  except ValueError:
    raise ConfigError(f"model.memory.layers={spec!r}: use 'all' or comma-separated "
                      'layer indices such as 0,2') from None
  if not layers or layers[0] < 0 or layers[-1] >= num_layers:
    raise ConfigError(f'model.memory.layers={spec!r}: indices must be in '
                      f'[0, {num_layers - 1}]')
  return tuple(layers)
