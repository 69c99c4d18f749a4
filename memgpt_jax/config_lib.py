"""Loading config files and checking a whole config before anything runs."""

import importlib.util
import json
import pathlib

import ml_collections

from memgpt_jax import ranges, text_metrics
from memgpt_jax.data import builders, pipeline, records
from memgpt_jax.errors import ConfigError
from memgpt_jax.model.config import ModelConfig


def load_config(path: str | pathlib.Path) -> ml_collections.ConfigDict:
  """Runs get_config() of a config file, or get_config(ARGS) for 'file.py:ARGS' (a
  config's named variants, as on the command line); configs build on a base this way."""
  path, _, arg = str(path).partition(':')
  path = pathlib.Path(path)
  if not path.is_file():
    raise ConfigError(f'config file {str(path)!r} does not exist')
  module = config_module(path)
  if not callable(getattr(module, 'get_config', None)):
    raise ConfigError(f'config file {str(path)!r} has no get_config(): define one that '
                      'returns an ml_collections.ConfigDict')
  return module.get_config(arg) if arg else module.get_config()


# Every setting with its default: what a config saved before a setting existed had.
DEFAULT_CONFIG = pathlib.Path(__file__).resolve().parents[1] / 'configs' / 'default.py'


def default_config() -> ml_collections.ConfigDict:
  return load_config(DEFAULT_CONFIG)


def with_defaults(config_json: dict) -> ml_collections.ConfigDict:
  """A saved config (its JSON form), each setting it lacks (added to
  configs/default.py since it was saved) at its default, whose value is the behaviour
  from before the setting existed: how a saved config rebuilds its model."""
  def merged(defaults: dict, saved: dict) -> dict:
    return {**defaults, **{key: merged(defaults[key], value)
                           if isinstance(value, dict) and isinstance(defaults.get(key), dict)
                           else value for key, value in saved.items()}}
  def as_tuples(value):
    return tuple(map(as_tuples, value)) if isinstance(value, list) else value
  def tuples_restored(typed: dict, loaded: dict) -> dict:
    # JSON writes a tuple as a list, and a list setting cannot be overridden by a
    # dotted flag: a setting that is a tuple by default is a tuple again, inside too.
    return {key: tuples_restored(typed[key], value) if isinstance(value, dict) and
            isinstance(typed.get(key), dict) else as_tuples(value)
            if isinstance(typed.get(key), tuple) else value
            for key, value in loaded.items()}
  typed = default_config().to_dict()
  defaults = json.loads(json.dumps(typed, default=str))
  return ml_collections.ConfigDict(tuples_restored(typed, merged(defaults, config_json)))


def flat_with_defaults(config_json: dict) -> dict:
  """flatten(config_json), each setting it lacks (added to configs/default.py since it
  was saved) at its default: how a saved config is compared with a current one."""
  defaults = json.loads(json.dumps(default_config().to_dict(), default=str))
  return flatten(defaults) | flatten(config_json)


def config_module(path: pathlib.Path):
  """Runs a config file as a module; a syntax error in it (or in a file it imports)
  is the user's to fix, so it becomes a ConfigError naming the file and line."""
  spec = importlib.util.spec_from_file_location(f'memgpt_config_{path.stem}', path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except SyntaxError as error:
    raise ConfigError(f'config file {str(path)!r} is not valid Python: {error.msg} '
                      f'({error.filename}, line {error.lineno})') from None
  return module


def _field(config: ml_collections.ConfigDict, key: str) -> tuple[ml_collections.ConfigDict, str]:
  """(the section holding the dotted key 'a.b', 'b'); ConfigError if there is no such key."""
  node = config
  for part in key.split('.'):
    if not hasattr(node, 'keys') or part not in node:
      raise ConfigError(f'unknown config key {key!r}')
    section, node = node, node[part]
  return section, part


def has_key(config: ml_collections.ConfigDict, key: str) -> bool:
  """Whether the dotted key 'a.b' names a field of the config."""
  try:
    _field(config, key)
  except ConfigError:
    return False
  return True


def set_dotted(config: ml_collections.ConfigDict, key: str, value):
  """config['a']['b'] = value for key 'a.b'; ConfigError if the config has no such key."""
  section, name = _field(config, key)
  section[name] = value


def flatten(config: ml_collections.ConfigDict | dict, prefix: str = '') -> dict:
  """{'model.memory.kind': 'delta', ...}: every leaf of a config, or of its JSON form,
  under its dotted key."""
  leaves = {}
  for key, value in config.items():
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      leaves.update(flatten(value, f'{prefix}{key}.'))
    else:
      leaves[prefix + key] = value
  return leaves


def apply_variants(config: ml_collections.ConfigDict, names: str | None,
                   variants: dict[str, dict]) -> ml_collections.ConfigDict:
  """Applies the comma-separated variant names in order: each maps dotted keys to values."""
  for name in filter(None, (part.strip() for part in (names or '').split(','))):
    if name not in variants:
      raise ConfigError(f'unknown config variant {name!r} (choose from '
                        f'{", ".join(variants)})')
    for key, value in variants[name].items():
      set_dotted(config, key, value)
  return config


def plain_gpt(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The baseline of a config: memory and pointer off, one segment spanning the example.
  A synthetic task keeps its row layout (data.task.segment_len, num_segments)."""
  config = config.copy_and_resolve_references()
  model = config.model
  if 'task' in config.data and 'segment_len' in config.data.task:
    config.data.task.segment_len, config.data.task.num_segments = (
        model.segment_len, model.num_segments)
  model.segment_len, model.num_segments = model.segment_len * model.num_segments, 1
  model.memory.enabled = False
  model.pointer.enabled = False
  return config


def check_ranges(config: ml_collections.ConfigDict):
  """ConfigError naming the first numeric setting outside its range (memgpt_jax/ranges.py):
  a check that needs nothing built, so a run refuses before it writes or compiles."""
  for key, value in flatten(config).items():
    numeric = isinstance(value, (int, float, tuple, list)) and not isinstance(value, bool)
    if numeric and all(isinstance(v, (int, float)) for v in _values(value)):
      declared = ranges.range_of(key)
      if declared and (problem := declared.problem(key, value)):
        raise ConfigError(problem)


def _values(value) -> tuple:
  return tuple(value) if isinstance(value, (tuple, list)) else (value,)


LAYOUTS = ('packed', 'streams')


def _check_layout(config: ml_collections.ConfigDict) -> None:
  """The streams layout reads one causal-LM corpus as whole documents (a synthetic
  task's examples being its documents)."""
  layout = config.data.layout
  if layout not in LAYOUTS:
    raise ConfigError(f'data.layout={layout!r} is not one of {", ".join(LAYOUTS)}')
  if layout != 'streams':
    return
  if config.data.get('mixture'):
    raise ConfigError("data.layout='streams' reads one corpus: data.mixture is not "
                      "supported with it (use data.layout='packed')")
  if records.is_seq2seq(config.data):
    raise ConfigError("data.layout='streams' is for causal-LM text: a seq2seq source "
                      "(data.inputs_key) needs data.layout='packed'")
  if config.data.source in builders.SEQ2SEQ_TASKS:
    raise ConfigError(f"data.layout='streams' is for causal-LM text: data.source="
                      f"{config.data.source!r} is a seq2seq task (use data.layout='packed')")


def validate(config: ml_collections.ConfigDict, vocab_size: int,
             num_processes: int = 1) -> ModelConfig:
  """Raises ConfigError naming the first value that does not fit; returns the model config."""
  check_ranges(config)
  model = ModelConfig.from_config(config.model, vocab_size)
  train = config.train
  if train.batch_size % train.grad_accum_steps:
    raise ConfigError(f'train.batch_size={train.batch_size} is not divisible by '
                      f'train.grad_accum_steps={train.grad_accum_steps}: the batch is '
                      'split into that many equal micro-batches')
  if train.batch_size % num_processes:
    raise ConfigError(f'train.batch_size={train.batch_size} is not divisible by the '
                      f'{num_processes} processes')
  buckets = tuple(train.eval_position_buckets)
  if list(buckets) != sorted(set(buckets)):
    raise ConfigError(f'train.eval_position_buckets={buckets} must be increasing token '
                      'positions')
  _check_layout(config)
  for name, task in pipeline.task_configs(config).items():
    where = f'data.mixture.{name}.' if name else 'data.'
    if model.arch == 'encoder_decoder' and not records.is_seq2seq(task.data):
      raise ConfigError("model.arch='encoder_decoder' reads (inputs, targets) pairs: "
                        f'{where}source={task.data.source!r} needs {where}inputs_key and '
                        'targets_key (a seq2seq source)')
    metrics = task.data.task_metrics
    if metrics and metrics not in text_metrics.KINDS:
      raise ConfigError(f'{where}task_metrics={metrics!r} is not one of '
                        f'{", ".join(text_metrics.KINDS)} (or empty)')
    if metrics and not records.is_seq2seq(task.data):
      raise ConfigError(f'{where}task_metrics needs a seq2seq source '
                        '(data.inputs_key and data.targets_key)')
  return model
