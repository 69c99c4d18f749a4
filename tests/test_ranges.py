"""Every numeric setting of every config in configs/ (each named variant, each grid
run of configs/grids.py) has a declared range (memgpt_jax/ranges.py), sits inside it,
and a value outside it is refused with one line naming the key before anything runs."""

import math
import pathlib

import pytest

from conftest import ROOT, load_config
from memgpt_jax import config_lib, ranges
from memgpt_jax.errors import ConfigError
from memgpt_jax.training.trainer import train_and_evaluate

_GRIDS = config_lib.config_module(ROOT / 'configs' / 'grids.py').GRIDS
# Arguments of the configs whose variants are not a VARIANTS table.
_ARGS = {'gpt_125m.py': ('', 'memgpt'), 'gpt_350m.py': ('', 'memgpt'),
         'gpt_1_3b.py': ('', 'memgpt'), 'gpt_scale.py': ('125m', '350m,memgpt', '1_3b')}


def _config_names() -> list[str]:
  """'configs/x.py' and 'configs/x.py:VARIANT' for every config file and variant."""
  names = []
  for path in sorted((ROOT / 'configs').glob('*.py')):
    if path.name == 'grids.py':
      continue
    variants = getattr(config_lib.config_module(path), 'VARIANTS', {})
    args = _ARGS.get(path.name, ('',) + tuple(variants))
    names += [f'configs/{path.name}' + (f':{arg}' if arg else '') for arg in args]
  return names


def _grid_configs() -> dict[str, object]:
  """Every grid run's config, and its curriculum stages', as ablate.py builds them."""
  configs = {}
  for grid_name, grid in _GRIDS.items():
    for run in grid.runs:
      for index, stage in enumerate(run.stages + ({},)):
        config = config_lib.load_config(ROOT / run.config)
        for key, value in (grid.overrides | run.overrides | stage).items():
          config_lib.set_dotted(config, key, value)
        configs[f'{grid_name}/{run.label}/{index}'] = (
            config_lib.plain_gpt(config) if run.plain_gpt else config)
  return configs


def _all_configs() -> dict[str, object]:
  configs = {name: config_lib.load_config(ROOT / name) for name in _config_names()}
  return configs | _grid_configs()


def _outside(declared: ranges.Range, value) -> list:
  """Values of `value`'s type just outside `declared` (and inf, NaN for floats)."""
  number = value[0] if isinstance(value, tuple) else value
  step = 1 if isinstance(number, int) else 0.5
  probes = []
  if declared.low is not None:
    probes.append(declared.low if declared.low_open else declared.low - step)
  if declared.high is not None:
    probes.append(declared.high if declared.high_open else declared.high + step)
  if isinstance(number, float):
    probes += [math.inf, math.nan]
  probes = [type(number)(p) for p in probes if p not in declared.also]
  return [(p,) if isinstance(value, tuple) else p for p in probes]


def _numeric_settings(config) -> dict:
  return {key: value for key, value in config_lib.flatten(config).items()
          if not isinstance(value, (bool, str)) and value != ()
          and all(isinstance(v, (int, float)) for v in
                  (value if isinstance(value, tuple) else (value,)))}


def test_every_numeric_setting_has_a_range_and_a_value_outside_it_is_refused():
  configs = _all_configs()
  assert len(configs) > 100  # files, variants and grid runs all walked
  walked = set()
  for name, config in configs.items():
    config_lib.check_ranges(config)  # what the configs ship is inside every range
    for key, value in _numeric_settings(config).items():
      declared = ranges.range_of(key)
      assert declared is not None, f'{name}: {key} has no range in memgpt_jax/ranges.py'
      probes = _outside(declared, value)
      assert probes, f'{key}: no value lies outside {declared.describe()}'
      for probe in probes:
        config_lib.set_dotted(config, key, probe)
        with pytest.raises(ConfigError) as refused:
          config_lib.check_ranges(config)
        message = str(refused.value)
        assert message.startswith(f'{key}=') and '\n' not in message, (name, message)
        config_lib.set_dotted(config, key, value)
      walked.add(key)
  # Every row of the table is some config's setting: no range is declared for nothing.
  assert set(ranges.RANGES) - walked == {'data.mixture.*.rate'}


def test_a_mixture_task_is_checked_with_its_data_settings_ranges():
  config = load_config('tiny')
  config.data.mixture = {'a': {'rate': 1.0, 'validation_fraction': 1.5}}
  with pytest.raises(ConfigError, match=r'^data.mixture.a.validation_fraction=1.5 must be '
                     r'in \[0, 1\)$'):
    config_lib.check_ranges(config)
  config.data.mixture = {'a': {'rate': -1.0}}
  with pytest.raises(ConfigError, match=r'^data.mixture.a.rate=-1.0 must be > 0$'):
    config_lib.check_ranges(config)


@pytest.mark.parametrize('key,value,message', [
    ('train.grad_clip_norm', -1.0, 'train.grad_clip_norm=-1.0 must be > 0'),
    ('train.grad_clip_norm', 0.0, 'train.grad_clip_norm=0.0 must be > 0'),
    ('train.end_lr_ratio', -1.0, r'train.end_lr_ratio=-1.0 must be in \[0, 1\]'),
    ('train.adam_b1', 1.5, r'train.adam_b1=1.5 must be in \[0, 1\)'),
    ('train.weight_decay', -1.0, 'train.weight_decay=-1.0 must be >= 0'),
])
def test_a_run_refuses_an_out_of_range_setting_before_it_writes(tmp_path, key, value,
                                                                message):
  config = load_config('tiny')
  config_lib.set_dotted(config, key, value)
  with pytest.raises(ConfigError, match=f'^{message}$'):
    train_and_evaluate(config, tmp_path / 'w')
  assert not pathlib.Path(tmp_path / 'w').exists()
