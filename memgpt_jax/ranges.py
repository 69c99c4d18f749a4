"""Every numeric setting's range, in one table: the trainer refuses a config with a
value outside it before anything compiles or is written, with one line naming the key
(config_lib.check_ranges), and memgpt-sample checks its flags against the `sample.*`
rows. What each setting means and its default: configs/default.py (or the config that
introduces it). Constraints between settings (a head count that must divide the
width, a task's blocks that must fit a segment) are checked where they are used."""

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Range:
  """low <= value (or low < value if low_open), value <= high (or < if high_open);
  a bound of None is no bound. `also`: values allowed outside the range, each with a
  meaning (`note`). Every value must be finite: inf and NaN never configure anything."""
  low: float | None = None
  high: float | None = None
  low_open: bool = False
  high_open: bool = False
  also: tuple[int, ...] = ()
  note: str = ''

  def contains(self, value) -> bool:
    if value in self.also:
      return True
    if not math.isfinite(value):
      return False
    if self.low is not None and not (value > self.low if self.low_open else value >= self.low):
      return False
    return self.high is None or (value < self.high if self.high_open else value <= self.high)

  def describe(self) -> str:
    """'in [0, 1)', '>= 1', 'a finite number', with the allowed extras and their note."""
    if self.low is not None and self.high is not None:
      words = (f'in {"(" if self.low_open else "["}{self.low:g}, '
               f'{self.high:g}{")" if self.high_open else "]"}')
    elif self.low is not None:
      words = f'{">" if self.low_open else ">="} {self.low:g}'
    elif self.high is not None:
      words = f'{"<" if self.high_open else "<="} {self.high:g}'
    else:
      words = 'a finite number'
    if self.also:
      words += ', or ' + ', '.join(str(v) for v in self.also)
    return words + (f' ({self.note})' if self.note else '')

  def problem(self, name: str, value) -> str | None:
    """'NAME=VALUE must be ...' if `value` (a number, or a tuple of numbers each
    checked) is outside the range; else None."""
    values = value if isinstance(value, (tuple, list)) else (value,)
    if all(self.contains(v) for v in values):
      return None
    each = 'each ' if isinstance(value, (tuple, list)) else ''
    return f'{name}={value!r} must be {each}{self.describe()}'


_COUNT = Range(1)  # how many of something: at least one
_NONNEGATIVE = Range(0)
_POSITIVE = Range(0, low_open=True)
_FRACTION = Range(0, 1, high_open=True)
_SEED = Range(0, note='a seed')
_ANY = Range()
_MESH_AXIS = Range(1, also=(-1,), note='-1: the devices the other axes leave')

RANGES: dict[str, Range] = {
    'seed': _SEED,
    # The model (memgpt_jax/model/config.py reads these).
    'model.d_model': _COUNT,
    'model.num_layers': _COUNT,
    'model.num_heads': _COUNT,
    'model.mlp_dim': _COUNT,
    'model.rope_base': _POSITIVE,
    'model.norm_epsilon': Range(0, 1, low_open=True),
    'model.segment_len': _COUNT,
    'model.num_segments': _COUNT,
    'model.dropout_rate': _FRACTION,
    'model.init_std': _POSITIVE,
    'model.segment_unroll': Range(0, note='0: all segments, no loop'),
    'model.memory.bptt_segments': Range(0, note='0: through all segments'),
    'model.memory.slots.num_slots': _NONNEGATIVE,
    'model.memory.slots.gate_bias_init': _ANY,
    'model.memory.delta.key_dim': Range(0, note='0: the head dimension'),
    'model.memory.delta.value_dim': Range(0, note='0: the head dimension'),
    'model.memory.delta.decay_init': Range(0, 1, low_open=True, high_open=True),
    'model.memory.delta.read_gate_bias_init': _ANY,
    'model.memory.delta.chunk_size': _COUNT,
    'model.pointer.num_heads': _COUNT,
    'model.pointer.head_dim': _COUNT,
    'model.pointer.cache_len': _NONNEGATIVE,
    'model.encoder.num_layers': _COUNT,
    'model.encoder.num_segments': _COUNT,
    # The data.
    'data.validation_fraction': _FRACTION,
    'data.shuffle_seed': _SEED,
    'data.shuffle_window_tokens': Range(0, note='0: documents whole, in order'),
    'data.read_threads': _COUNT,
    'data.sentencepiece.vocab_size': _COUNT,
    'data.sentencepiece.max_train_chars': _COUNT,
    'data.sentencepiece.character_coverage': Range(0, 1, low_open=True),
    'data.mixture.*.rate': _POSITIVE,
    'data.task.seed': _SEED,
    'data.task.num_train': _COUNT,
    'data.task.num_eval': _COUNT,
    'data.task.train_distances': _NONNEGATIVE,
    'data.task.eval_distances': _NONNEGATIVE,
    'data.task.num_pairs': _COUNT,
    'data.task.num_queries': _COUNT,
    'data.task.num_keys': _COUNT,
    'data.task.num_values': _COUNT,
    'data.task.num_distractors': _NONNEGATIVE,
    'data.task.num_sentences': _COUNT,
    'data.task.context_segments': _COUNT,
    'data.task.num_facts': _COUNT,
    'data.task.segment_len': Range(0, note="0: the model's"),
    'data.task.num_segments': Range(0, note="0: the model's"),
    'data.task.passkey_len': _COUNT,
    'data.task.copy_tokens': _COUNT,
    'data.task.copy_region': _COUNT,
    'data.task.num_symbols': Range(1, 200),
    'data.task.vocab': Range(2, 200),
    'data.chat.reply_room': _NONNEGATIVE,
    # Training.
    'train.batch_size': _COUNT,
    'train.num_steps': _COUNT,
    'train.learning_rate': _POSITIVE,
    'train.warmup_steps': _NONNEGATIVE,
    'train.end_lr_ratio': Range(0, 1),
    'train.weight_decay': _NONNEGATIVE,
    'train.adam_b1': _FRACTION,
    'train.adam_b2': _FRACTION,
    'train.grad_clip_norm': _POSITIVE,
    'train.grad_accum_steps': _COUNT,
    'train.z_loss': _NONNEGATIVE,
    'train.coverage_loss': _NONNEGATIVE,
    'train.pointer_aux_loss': _NONNEGATIVE,
    'train.write_cost': _NONNEGATIVE,
    'train.log_every': _COUNT,
    'train.eval_every': _COUNT,
    'train.eval_batches': _COUNT,
    'train.eval_documents': Range(0, note='0: all'),
    'train.eval_position_buckets': _COUNT,
    'train.generate_examples': _COUNT,
    'train.generate_max_tokens': _COUNT,
    'train.checkpoint_every': _COUNT,
    'train.keep_checkpoints': _COUNT,
    'train.stop_at_step': Range(0, note='0: never'),
    # The devices.
    'mesh.data': _MESH_AXIS,
    'mesh.fsdp': _MESH_AXIS,
    'mesh.tensor': _MESH_AXIS,
    # Sampling (memgpt-train's sample; memgpt-sample's flags of the same names).
    'sample.max_new_tokens': _COUNT,
    'sample.num_samples': _COUNT,
    'sample.temperature': Range(0, note='0: greedy'),
    'sample.top_k': Range(0, note='0: all tokens'),
    'sample.top_p': Range(0, 1, low_open=True, note='1: all tokens'),
}


def range_of(key: str) -> Range | None:
  """The range of a dotted config key; a mixture's override data.mixture.NAME.KEY has
  data.KEY's (its rate: data.mixture.*.rate's). None: not a numeric setting."""
  parts = key.split('.')
  if parts[:2] == ['data', 'mixture'] and len(parts) > 3:
    key = 'data.mixture.*.rate' if parts[3:] == ['rate'] else '.'.join(['data'] + parts[3:])
  return RANGES.get(key)
