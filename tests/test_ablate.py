"""The ablation driver end to end on a tiny grid: results files, plots, the leak check."""

import importlib.util
import json
import pathlib

import pytest

from memgpt_jax.errors import ConfigError


ROOT = pathlib.Path(__file__).resolve().parents[1]


def _ablate():
  spec = importlib.util.spec_from_file_location('ablate', ROOT / 'experiments' / 'ablate.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


ablate = _ablate()


def test_leak_threshold():
  assert not ablate.leaks(1 / 16, 1 / 16, 100)
  assert not ablate.leaks(0.0, 1 / 16, 100)  # below chance is no leak
  assert ablate.leaks(0.3, 1 / 16, 100)


def test_every_ablation_config_loads_and_changes_one_thing():
  from memgpt_jax import config_lib  # pylint: disable=import-outside-toplevel
  base = config_lib.load_config(ROOT / 'configs' / 'synthetic.py').to_dict()
  for path in sorted((ROOT / 'configs' / 'ablations').glob('*.py')):
    changed = config_lib.load_config(path).to_dict()
    diffs = [key for key in base['model']['memory'] if
             base['model']['memory'][key] != changed['model']['memory'][key]]
    diffs += [key for key in base['model']['pointer'] if
              base['model']['pointer'][key] != changed['model']['pointer'][key]]
    assert len(diffs) <= 1, (path.name, diffs)
    if path.stem in ('bptt_full', 'memory_all_layers'):  # the full grid runs them as the base
      assert not diffs, (path.name, diffs)
    assert {k: v for k, v in changed.items() if k != 'model'} == {
        k: v for k, v in base.items() if k != 'model'}, path.name


def test_plain_gpt_has_the_parameters_of_its_memgpt(tmp_path):
  memgpt, plain = ablate._text_pair(2)
  grid = ablate.GRIDS['tiny']
  configs = [ablate.make_config(run, grid, 0, tmp_path) for run in (memgpt, plain)]
  counts = [ablate._count_params(config) for config in configs]
  model = configs[1].model
  assert model.mlp_dim > configs[0].model.mlp_dim and not model.memory.enabled
  # Within one MLP unit (swiglu: three d_model columns per layer).
  assert abs(counts[0] - counts[1]) <= 3 * model.d_model * model.num_layers, counts


def test_tiny_grid_end_to_end(tmp_path):
  report = ablate.run_grid('tiny', tmp_path / 'results', tmp_path / 'runs',
                           settings={'train.log_every': 1})
  for suffix in ('.md', '.json', '_accuracy.png', '_loss.png'):
    assert (tmp_path / 'results' / f'tiny{suffix}').stat().st_size > 0
  saved = json.loads((tmp_path / 'results' / 'tiny.json').read_text())
  assert saved['summary'] == json.loads(json.dumps(report['summary']))
  rows = {r['label']: r for r in saved['summary']}
  # The setting is on record, and it reached every run: a loss logged at every step.
  assert saved['settings'] == {'train.log_every': 1}
  assert '`train.log_every=1`' in (tmp_path / 'results' / 'tiny.md').read_text()
  for run in saved['runs']:
    assert [step for step, _ in run['loss_curve']] == list(range(1, run['steps'] + 1))
  assert set(rows) == {'recall/memory_fixed', 'recall/memory_none', 'text/plain_gpt'}
  # memory_fixed went through a one-stage curriculum: trained there first, then from it.
  stage = tmp_path / 'runs' / 'tiny' / 'recall' / 'memory_fixed' / 'seed0' / 'stage0'
  assert (stage / 'checkpoints' / '2').is_dir()
  saved_config = json.loads((stage.parent / 'config.json').read_text())
  assert saved_config['init_from'] == str(stage)
  control = rows['recall/memory_none']
  checked = {d: v for d, v in control['distances'].items() if v['checked']}
  assert set(checked) == {'1', '3'}
  for distance, values in checked.items():
    mean, _ = values['accuracy']
    assert not values['leak'] and mean <= control['chance'] + 0.1, (distance, mean)
  assert ablate.found_leaks(saved) == []
  assert rows['text/plain_gpt']['bits_per_byte'][0] > 0
  table = (tmp_path / 'results' / 'tiny.md').read_text()
  assert '| recall/memory_none |' in table and 'at chance' in table


def test_settings_parse_literals_and_reject_bad_items():
  assert ablate.parse_settings(['train.batch_size=64', 'data.task.train_distances=(0, 1)',
                                'data.source=passkey']) == {
      'train.batch_size': 64, 'data.task.train_distances': (0, 1), 'data.source': 'passkey'}
  with pytest.raises(ConfigError, match='key=value'):
    ablate.parse_settings(['train.batch_size'])


def test_an_unknown_setting_fails_before_any_run(tmp_path):
  with pytest.raises(ConfigError, match='train.batch_sise'):
    ablate.run_grid('tiny', tmp_path / 'results', tmp_path / 'runs',
                    settings={'train.batch_sise': 4})
  assert not (tmp_path / 'runs').exists() and not (tmp_path / 'results').exists()
