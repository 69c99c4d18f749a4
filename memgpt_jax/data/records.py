"""What a stored record means to the model: the text of a document, or (inputs, targets).

Any TFDS dataset becomes usable by naming its feature keys in the config:
  data.text_key = 'text'                       causal LM on one text feature
  data.inputs_key / data.targets_key           seq2seq (prefix LM): inputs -> targets
Keys may be nested ('translation/de'); a feature holding a sequence of texts (the
turns of a dialogue) is joined with newlines, or, with data.first_speaker_key naming
who speaks first, written turn by turn with the chat template (data.chat).
"""

from collections.abc import Mapping
from typing import Any

import ml_collections
import numpy as np

from memgpt_jax.data.errors import DataError
from memgpt_jax.data.turns import Template


def _as_text(value: Any, key: str) -> str:
  if isinstance(value, bytes):
    return value.decode('utf-8', errors='replace')
  if isinstance(value, str):
    return value
  if isinstance(value, np.ndarray) and value.ndim == 0:
    return _as_text(value.item(), key)
  if isinstance(value, (list, tuple, np.ndarray)):
    return '\n'.join(_as_text(v, key) for v in value)
  raise DataError(f'feature {key!r} holds {type(value).__name__}, not text')


def _feature(record: Mapping[str, Any], key: str) -> Any:
  """The value under `key` ('a/b' for nested features)."""
  value: Any = record
  for part in key.split('/'):
    if not isinstance(value, Mapping) or part not in value:
      have = ', '.join(sorted(value)) if isinstance(value, Mapping) else type(value).__name__
      raise DataError(f'the records have no feature {key!r} (they have: {have}): set '
                      'data.text_key, or data.inputs_key and data.targets_key')
    value = value[part]
  return value


def feature_text(record: Mapping[str, Any], key: str) -> str:
  """The text under `key` ('a/b' for nested features)."""
  return _as_text(_feature(record, key), key)


def dialogue_text(record: Mapping[str, Any], data_config: ml_collections.ConfigDict) -> str:
  """The turns under data.text_key written with data.chat, the speakers alternating
  from the one data.first_speaker_key names (0: the user, 1: the assistant)."""
  key, speaker_key = data_config.text_key, data_config.first_speaker_key
  turns = [_as_text(turn, key) for turn in _feature(record, key)]
  first = int(np.asarray(_feature(record, speaker_key)))
  if first not in (0, 1):
    raise DataError(f'feature {speaker_key!r} is {first}: data.first_speaker_key names a '
                    'feature that is 0 (the user speaks first) or 1 (the assistant)')
  chat = data_config.chat
  template = Template(chat.user, chat.assistant, chat.end_of_turn)
  prefixes = (template.user, template.assistant)
  return ''.join(f'{prefixes[(first + i) % 2]}{turn}{template.end_of_turn}'
                 for i, turn in enumerate(turns))


def is_seq2seq(data_config: ml_collections.ConfigDict) -> bool:
  return bool(data_config.get('inputs_key'))


def record_texts(record: Mapping[str, Any],
                 data_config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """(text,) for a causal LM source, (inputs, targets) for a seq2seq one."""
  if is_seq2seq(data_config):
    if not data_config.get('targets_key'):
      raise DataError('data.inputs_key is set but data.targets_key is not')
    return (feature_text(record, data_config.inputs_key),
            feature_text(record, data_config.targets_key))
  if data_config.get('first_speaker_key'):
    return (dialogue_text(record, data_config),)
  return (feature_text(record, data_config.get('text_key') or 'text'),)
