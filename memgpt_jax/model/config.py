"""A frozen, validated view of `config.model`, hashable so Flax modules can hold it."""

import dataclasses
import functools
import operator

import jax.numpy as jnp
import ml_collections

from memgpt_jax import ranges
from memgpt_jax.errors import ConfigError


def _setting(key: str | None = None, *, choices: tuple[str, ...] = (), parse=None):
  """A field read from `config.model[key]` (dotted; default: the field's name); a
  string setting lists its `choices`, a numeric one has its range in
  memgpt_jax/ranges.py; `parse(value, config.model)` turns it into the field's value
  where a cast does not."""
  return dataclasses.field(metadata=dict(key=key, choices=choices, parse=parse))


def _problem(name: str, value, spec: dict) -> str | None:
  """What is wrong with a setting's value, in words, or None."""
  if spec['choices'] and value not in spec['choices']:
    return f'{name}={value!r} is not one of {", ".join(spec["choices"])}'
  declared = ranges.range_of(name)
  return declared.problem(name, value) if declared and not isinstance(value, bool) else None


def _parse_layers(spec, model: ml_collections.ConfigDict) -> tuple[int, ...]:
  """'all' or '0,2,3' -> sorted layer indices."""
  num_layers = int(model.num_layers)
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


def _build(cls, section: ml_collections.ConfigDict, model: ml_collections.ConfigDict,
           prefix: str, **given):
  """`cls` from the settings its fields declare, each cast, parsed and checked; `given`:
  its fields that are not settings."""
  values = {}
  for field in dataclasses.fields(cls):
    if field.name in given:
      continue
    spec = field.metadata
    key = spec['key'] or field.name
    raw = functools.reduce(operator.getitem, key.split('.'), section)
    if dataclasses.is_dataclass(field.type):
      values[field.name] = _build(field.type, raw, model, f'{prefix}{key}.')
      continue
    value = spec['parse'](raw, model) if spec['parse'] else field.type(raw)
    if problem := _problem(f'model.{prefix}{key}', value, spec):
      raise ConfigError(problem)
    values[field.name] = value
  return cls(**values, **given)


@dataclasses.dataclass(frozen=True)
class SlotsConfig:
  """model.memory.slots: S learned slots, written by cross-attention (model/slot_memory.py)."""
  num_slots: int = _setting()
  gate: str = _setting(choices=('fixed', 'gru', 'none'))
  gate_bias_init: float = _setting()


@dataclasses.dataclass(frozen=True)
class DeltaConfig:
  """model.memory.delta: the delta-rule associative memory (model/delta_memory.py).
  key_dim and value_dim of 0 in the config become the head dimension here."""
  key_dim: int = _setting()
  value_dim: int = _setting()
  feature_map: str = _setting(choices=('silu', 'elu_plus_one', 'identity'))
  key_shift: bool = _setting()
  write_strength: str = _setting(choices=('learned', 'sparse', 'fixed', 'pointer'))
  price_full_writes: bool = _setting()
  decay: str = _setting(choices=('none', 'learned'))
  decay_init: float = _setting()
  read_gate: str = _setting(choices=('token', 'head', 'none', 'scaled'))
  read_gate_bias_init: float = _setting()
  write_form: str = _setting(choices=('auto', 'scan', 'chunked', 'chunked_wy'))
  chunk_size: int = _setting()


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """config.model, each setting declared once here with its choices (its range:
  memgpt_jax/ranges.py; its default and what it means: configs/default.py)."""
  vocab_size: int  # from the tokenizer, not the config
  # 'encoder' is not a setting: it is the encoder's own view (encoder_config).
  arch: str = _setting(choices=('decoder', 'encoder_decoder'))
  d_model: int = _setting()
  num_layers: int = _setting()
  num_heads: int = _setting()
  mlp_dim: int = _setting()
  mlp_type: str = _setting(choices=('swiglu', 'gelu'))
  norm_type: str = _setting(choices=('rmsnorm', 'layernorm'))
  norm_epsilon: float = _setting()
  bias: str = _setting(choices=('none', 'qkv', 'all'))
  position: str = _setting(choices=('rope', 'sinusoidal', 'learned', 'none'))
  rope_base: float = _setting()
  segment_len: int = _setting()
  num_segments: int = _setting()
  tie_embeddings: bool = _setting()
  dropout_rate: float = _setting()
  init_std: float = _setting()
  dtype: str = _setting(choices=('float32', 'bfloat16'))
  attention: str = _setting(choices=('auto', 'einsum', 'fused'))
  segment_unroll: int = _setting()
  remat: str = _setting(choices=('none', 'dots', 'full'))
  scan_layers: bool = _setting()
  bidirectional_prefix: bool = _setting()
  memory_enabled: bool = _setting('memory.enabled')
  memory_kind: str = _setting('memory.kind', choices=('delta', 'slots'))
  memory_layers: tuple[int, ...] = _setting('memory.layers', parse=_parse_layers)
  bptt_segments: int = _setting('memory.bptt_segments')
  slots: SlotsConfig = _setting('memory.slots')
  delta: DeltaConfig = _setting('memory.delta')
  pointer_enabled: bool = _setting('pointer.enabled')
  pointer_heads: int = _setting('pointer.num_heads')
  pointer_head_dim: int = _setting('pointer.head_dim')
  pointer_cache_len: int = _setting('pointer.cache_len')
  pointer_copy_inputs: bool = _setting('pointer.copy_inputs')
  pointer_mixture: str = _setting('pointer.mixture', choices=('sentinel', 'scaled'))
  encoder_layers: int = _setting('encoder.num_layers')
  encoder_segments: int = _setting('encoder.num_segments')
  cross_attention: str = _setting('encoder.cross_attention', choices=('all', 'last_segment'))

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
  def source_len(self) -> int:
    """Encoder positions the decoder attends to and copies from (0: no encoder)."""
    if self.arch != 'encoder_decoder':
      return 0
    segments = 1 if self.cross_attention == 'last_segment' else self.encoder_segments
    return segments * self.segment_len

  @property
  def num_candidates(self) -> int:
    """Pointer candidates per position: the source (encoder-decoder), the cache of
    earlier segments, then this one."""
    return self.source_len + self.pointer_cache_len + self.segment_len

  @property
  def encoder_config(self) -> 'ModelConfig':
    """The encoder's view: its own depth, every token a bidirectional input, no output
    head or pointer; its memory on every layer where the decoder's is, else on the same
    layer indices."""
    every_layer = self.memory_layers == tuple(range(self.num_layers))
    return dataclasses.replace(
        self, arch='encoder', num_layers=self.encoder_layers,
        num_segments=self.encoder_segments, bidirectional_prefix=True, pointer_enabled=False,
        tie_embeddings=True,
        memory_layers=tuple(range(self.encoder_layers)) if every_layer else self.memory_layers)

  @property
  def memory_slots(self) -> int:
    """Slots the attention reads beside the window: S for slot memory, else none."""
    return self.slots.num_slots if self.memory_enabled and self.memory_kind == 'slots' else 0

  def has_memory(self, layer: int) -> bool:
    return self.memory_enabled and layer in self.memory_layers

  @property
  def num_memory_layers(self) -> int:
    return len(self.memory_layers) if self.memory_enabled else 0

  @property
  def layer_period(self) -> int:
    """The fewest layers whose memory pattern repeats through the depth: what one
    step of the scan over layers applies (model.scan_layers)."""
    layers = self.num_layers
    return next(period for period in range(1, layers + 1) if layers % period == 0 and all(
        self.has_memory(layer) == self.has_memory(layer % period) for layer in range(layers)))

  @classmethod
  def from_config(cls, model: ml_collections.ConfigDict, vocab_size: int) -> 'ModelConfig':
    """Checks every setting of `config.model` against its declaration above, then the
    ones that depend on each other (ConfigError, one line, on the first problem)."""
    built = _build(cls, model, model, prefix='', vocab_size=int(vocab_size))
    cfg = dataclasses.replace(built, delta=dataclasses.replace(
        built.delta, key_dim=built.delta.key_dim or built.head_dim,
        value_dim=built.delta.value_dim or built.head_dim))
    if cfg.d_model % cfg.num_heads:
      raise ConfigError(f'model.num_heads={cfg.num_heads} does not divide '
                        f'model.d_model={cfg.d_model}')
    if cfg.position == 'rope' and cfg.head_dim % 2:
      raise ConfigError('rope needs an even head dimension (d_model / num_heads)')
    if cfg.memory_enabled and cfg.memory_kind == 'slots' and cfg.slots.num_slots == 0:
      raise ConfigError('model.memory.slots.num_slots=0 with memory.enabled=True: '
                        'set num_slots >= 1 or memory.enabled=False')
    if (cfg.memory_enabled and cfg.memory_kind == 'delta'
        and cfg.delta.write_strength == 'pointer' and not cfg.pointer_enabled):
      raise ConfigError("model.memory.delta.write_strength='pointer' needs "
                        'model.pointer.enabled=True')
    if cfg.delta.price_full_writes and cfg.delta.write_strength != 'sparse':
      raise ConfigError('model.memory.delta.price_full_writes=True prices the writes that '
                        "write_strength='sparse' clips at 1; it is "
                        f'{cfg.delta.write_strength!r}')
    if cfg.arch == 'encoder_decoder':
      _check_encoder(cfg)
    return cfg


def _check_encoder(cfg: ModelConfig):
  """The settings an encoder-decoder model needs (ConfigError, one line)."""
  if cfg.scan_layers:
    raise ConfigError("model.arch='encoder_decoder' runs its layers unrolled: set "
                      'model.scan_layers=False')
  if cfg.num_memory_layers and cfg.encoder_config.memory_layers[-1] >= cfg.encoder_layers:
    raise ConfigError(f'model.memory.layers={cfg.memory_layers} names a layer the encoder '
                      f'lacks (model.encoder.num_layers={cfg.encoder_layers})')
  if cfg.memory_enabled and cfg.memory_kind == 'delta' and cfg.delta.write_strength == 'pointer':
    raise ConfigError("model.memory.delta.write_strength='pointer' needs a pointer, which "
                      "the encoder lacks: use 'learned' with model.arch='encoder_decoder'")
  if (cfg.cross_attention == 'last_segment' and cfg.num_memory_layers
      and cfg.encoder_layers != cfg.num_layers):
    raise ConfigError("model.encoder.cross_attention='last_segment' hands the encoder's "
                      'memory to the decoder: model.encoder.num_layers must equal '
                      f'model.num_layers ({cfg.encoder_layers} != {cfg.num_layers})')


