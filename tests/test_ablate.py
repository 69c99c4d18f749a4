"""The ablation driver end to end on a tiny grid: results files, plots, the leak check."""

import json
import pathlib

import pytest

from conftest import load_module, snapshot
from memgpt_jax import config_lib
from memgpt_jax.data import synthetic
from memgpt_jax.errors import ConfigError, UserError


ROOT = pathlib.Path(__file__).resolve().parents[1]


ablate = load_module('experiments/ablate.py')
ablation_eval = load_module('experiments/ablation_eval.py')
param_matching = load_module('experiments/param_matching.py')


def test_leak_threshold():
  assert not ablation_eval.leaks(1 / 16, 1 / 16, 100)
  assert not ablation_eval.leaks(0.0, 1 / 16, 100)  # below chance is no leak
  assert ablation_eval.leaks(0.3, 1 / 16, 100)


def test_every_config_variant_changes_one_thing():
  """Over every key of the config: a variant differs from the base in exactly one
  place, and a slot-memory knob (applied after 'slots') in one place beyond it."""
  path = ROOT / 'configs' / 'synthetic.py'
  module = load_module('configs/synthetic.py')
  base = config_lib.flatten(config_lib.load_config(path))
  slots = config_lib.flatten(config_lib.load_config(f'{path}:slots'))
  for name in module.VARIANTS:
    is_slot_knob = name != 'slots' and all(
        key.startswith('model.memory.slots.') for key in module.VARIANTS[name])
    reference = slots if is_slot_knob else base
    changed = config_lib.flatten(config_lib.load_config(
        f'{path}:slots,{name}' if is_slot_knob else f'{path}:{name}'))
    assert changed.keys() == reference.keys(), name
    diffs = [key for key in reference if reference[key] != changed[key]]
    assert len(diffs) == 1, (name, diffs)
  grid_configs = {run.config for grid in ablate.GRIDS.values() for run in grid.runs}
  for config in grid_configs:  # every grid entry names variants that exist
    config_lib.load_config(ROOT / config)


def test_plain_gpt_has_the_parameters_of_its_memgpt(tmp_path):
  memgpt, plain = load_module('configs/grids.py')._text(2, memories=('delta',))
  grid = ablate.GRIDS['tiny']
  configs = [ablate.make_config(run, grid, 0, tmp_path) for run in (memgpt, plain)]
  counts = [param_matching.count_params(config) for config in configs]
  model = configs[1].model
  assert model.mlp_dim > configs[0].model.mlp_dim and not model.memory.enabled
  # Within one MLP unit (swiglu: three d_model columns per layer).
  assert abs(counts[0] - counts[1]) <= 3 * model.d_model * model.num_layers, counts


def test_a_part_switched_off_is_paid_for_in_mlp_units(tmp_path):
  """Every long_text run has the parameters of the MemGPT with both parts."""
  grid = ablate.GRIDS['long_text']
  configs = {run.label: ablate.make_config(run, grid, 0, tmp_path) for run in grid.runs}
  full = param_matching.count_params(configs['long_text/both_streams'])
  model = configs['long_text/both_streams'].model
  for label, config in configs.items():
    assert abs(param_matching.count_params(config) - full) <= 3 * model.d_model * model.num_layers, label
  assert configs['long_text/gpt_window_T'].model.mlp_dim > model.mlp_dim


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
  assert set(rows) == {'recall/memory_off', 'text/plain_gpt'}
  # recall/memory_off went through a one-stage curriculum: trained there first, then from it.
  stage = tmp_path / 'runs' / 'tiny' / 'recall' / 'memory_off' / 'seed0' / 'stage0'
  assert (stage / 'checkpoints' / '2').is_dir()
  saved_config = json.loads((stage.parent / 'config.json').read_text())
  assert saved_config['init_from'] == str(stage)
  control = rows['recall/memory_off']
  checked = {d: v for d, v in control['distances'].items() if v['checked']}
  assert set(checked) == {'1', '3'}
  # The leak check's count is what the evaluation scored: every validation row (32) has
  # one query block of 2 queries.
  run, = [run for run in saved['runs'] if run['label'] == 'recall/memory_off']
  assert {d: v['answers'] for d, v in run['distances'].items()} == {'1': 64, '3': 64}
  for distance, values in checked.items():
    mean, _ = values['accuracy']
    assert not values['leak'] and mean <= control['chance'] + 0.1, (distance, mean)
  assert ablate.found_leaks(saved) == []
  assert rows['text/plain_gpt']['bits_per_byte'][0] > 0
  table = (tmp_path / 'results' / 'tiny.md').read_text()
  assert '| recall/memory_off |' in table and 'at chance' in table
  # Each distance's evaluation is timed, with the peak memory while it ran: reading a
  # row twice as long needs no more memory (rows are read a training row at a time).
  cost = control['distances']
  assert cost['1']['eval_seconds'] > 0 and cost['3']['eval_seconds'] > 0
  assert 0 < cost['3']['eval_peak_rss_mib'] <= 1.5 * cost['1']['eval_peak_rss_mib']
  assert 'Evaluation at each distance' in table


def test_whole_documents_are_scored_and_a_grid_goes_on_where_it_stopped(tmp_path,
                                                                       monkeypatch):
  """Text runs of a documents grid are scored on whole validation documents, the
  carried state and the reset one, by position; run again, the grid trains nothing
  and reports the same; a changed setting or data revision on the same workdir is
  refused."""
  results, runs = tmp_path / 'results', tmp_path / 'runs'
  report = ablate.run_grid('tiny_documents', results, runs)
  rows = {r['label']: r for r in report['summary']}
  memgpt, gpt = rows['long_text/both_streams'], rows['long_text/gpt_window_T']
  assert set(memgpt['documents']) == {'carried', 'reset'}
  assert set(gpt['documents']) == {'reset'}  # no state: one number
  for kind in ('carried', 'reset'):
    assert set(memgpt['documents'][kind]) == {
        'bits_per_byte', 'bits_per_byte/0-64', 'bits_per_byte/64-1K', 'bits_per_byte/1K+'}
    assert memgpt['documents'][kind]['bits_per_byte'][0] > 0
  # Carrying the state through a document scores differently from resetting it.
  assert (memgpt['documents']['carried']['bits_per_byte'][0]
          != memgpt['documents']['reset']['bits_per_byte'][0])
  assert (results / 'tiny_documents_positions.png').stat().st_size > 0
  table = (results / 'tiny_documents.md').read_text()
  assert '| long_text/both_streams |' in table and 'state carried' in table

  before = snapshot(runs)
  again = ablate.run_grid('tiny_documents', results, runs)
  assert snapshot(runs) == before  # nothing trained or evaluated again
  assert again['summary'] == report['summary']
  # Another machine, the results file committed, the workdir not: kept, not trained.
  elsewhere = tmp_path / 'elsewhere'
  kept = ablate.run_grid('tiny_documents', results, elsewhere)
  assert kept['summary'] == report['summary'] and not list(elsewhere.rglob('checkpoints'))
  # A command that reaches some rows only keeps the file's results of the others.
  part = ablate.run_grid('tiny_documents', results, elsewhere, only=('long_text/gpt',))
  assert part['summary'] == report['summary']
  # A changed setting trains again (a new workdir), on the same workdir is refused.
  changed = ablate.run_grid('tiny_documents', results, elsewhere, only=('long_text/gpt',),
                            settings={'train.num_steps': 3})
  assert changed['summary'][0]['steps'] == 3
  with pytest.raises(UserError, match='holds a result of another config'):
    ablate.run_grid('tiny_documents', results, runs, settings={'train.learning_rate': 1e-3})
  # Its data's generator revised (synthetic.REVISIONS): not the run the workdir holds.
  monkeypatch.setitem(synthetic.REVISIONS, gpt['source'], 2)
  with pytest.raises(UserError, match='holds a result of another config or data revision'):
    ablate.run_grid('tiny_documents', results, runs, only=('long_text/gpt',))


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


def test_only_that_starts_no_label_is_one_line(tmp_path):
  with pytest.raises(UserError, match=r'^--only=recall/gru starts no label of --grid=tiny '
                     r'\(recall/memory_off, text/plain_gpt\)$'):
    ablate.run_grid('tiny', tmp_path / 'results', tmp_path / 'runs', only=('recall/gru',))
  assert not (tmp_path / 'runs').exists() and not (tmp_path / 'results').exists()


def test_a_task_the_data_layer_refuses_names_its_grid_row(tmp_path):
  with pytest.raises(UserError, match=r'^recall/memory_off: data.task: num_keys \+ num_values '
                     'must be < 200$'):
    ablate.run_grid('tiny', tmp_path / 'results', tmp_path / 'runs',
                    settings={'data.task.num_keys': 190})
  assert not (tmp_path / 'runs').exists() and not (tmp_path / 'results').exists()
