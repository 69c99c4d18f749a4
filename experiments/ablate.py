"""Trains an ablation grid, evaluates it per distance, writes results tables and plots.

  python experiments/ablate.py --grid=quick|core|capacity|text|delta_knobs|full|curriculum|tiny
                               [--out=experiments/results]
                               [--workdir=runs/ablate] [--name=NAME] [--only=recall/,...]
                               [--seeds=0,1] [--set=train.num_steps=8000 --set=train.batch_size=64 ...]

The grids are data, in configs/grids.py. For every (config, seed) of the grid:
memgpt_jax.training.trainer.train_and_evaluate trains it in
<workdir>/<grid>/<label>/seed<k>; ablation_eval.py restores the final checkpoint and
scores every evaluation split (one per distance) of a synthetic task, or bits per byte
on text; ablation_report.py writes <out>/<name>.md (the table: mean ± std over seeds),
<name>.json (every number, per seed too), <name>_accuracy.png (accuracy against
distance) and <name>_loss.png (training loss curves).

A long grid runs in pieces: stopped anywhere (Ctrl-C, kill), the same command goes on
where it was. A finished (run, seed) keeps its result in its workdir (result.json,
with the config it was trained with) and is not trained again; an unfinished one
resumes from its last checkpoint (exactly: memgpt-train's resume). A workdir holding a
run of another config is refused with one line: name a new --workdir. The results
file <out>/<name>.json keeps every run's result and config too: a (run, seed) it holds
with the same config is taken from it, not trained again, so a grid grows seed by seed
on machines that do not share a workdir (each run names the commit it was trained at).

A model whose memory is off and whose pointer sees only the current segment cannot
know an answer D >= 1 segments back: its accuracy there must be at chance. Above
chance (ablation_eval.LEAK_STANDARD_ERRORS standard errors of a binomial) is reported
as a LEAK and the driver exits 1.
"""

import ast
import contextlib
import dataclasses
import pathlib
import json
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np
import tensorflow_datasets as tfds

from ablation_eval import evaluate_distances, evaluate_documents
from ablation_report import SUCCESS_ACCURACY, found_leaks, summarize, write_report
from param_matching import count_params, with_params
from memgpt_jax import config_lib
from memgpt_jax import host_memory
from memgpt_jax.data import builders
from memgpt_jax.data import synthetic
from memgpt_jax.errors import ConfigError, UserError
from memgpt_jax.provenance import provenance
from memgpt_jax.training import trainer
from memgpt_jax.training.metrics_writer import read_metrics

ROOT = pathlib.Path(__file__).resolve().parents[1]
_OUT = flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
_WORKDIR = flags.DEFINE_string('workdir', str(ROOT / 'runs' / 'ablate'), 'Training runs.')
_NAME = flags.DEFINE_string('name', None, 'Results file name (default: the grid name).')
_SEEDS = flags.DEFINE_list('seeds', [], "Train these seeds instead of the grid's.")
_SET = flags.DEFINE_multi_string('set', [], "Config overrides for every run, after the grid's "
                                 'own: key=value, the value a Python literal.')
_ONLY = flags.DEFINE_list('only', [], 'Run only the grid entries whose label starts with '
                          'one of these, e.g. recall/,text/.')

GRIDS = config_lib.config_module(ROOT / 'configs' / 'grids.py').GRIDS
_GRID = flags.DEFINE_enum('grid', 'quick', list(GRIDS), 'Which grid to run (configs/grids.py).')


def make_config(run, grid, seed: int, data_dir: pathlib.Path):
  config = config_lib.load_config(ROOT / run.config)
  for key, value in grid.overrides.items():
    config_lib.set_dotted(config, key, value)
  base = config.copy_and_resolve_references()
  for key, value in run.overrides.items():
    config_lib.set_dotted(config, key, value)
  if run.plain_gpt:
    config = with_params(config_lib.plain_gpt(config), count_params(config))
  elif run.match_params:
    config = with_params(config, count_params(base))
  config.seed = seed
  config.data.shuffle_seed = seed
  config.data.tfds_data_dir = str(data_dir)
  return config


_RESULT = 'result.json'


def kept_results(results_file: pathlib.Path) -> dict[tuple[str, int], dict]:
  """{(label, seed): result} of a results file written earlier (none if there is none)."""
  if not results_file.is_file():
    return {}
  report = json.loads(results_file.read_text())
  return {(r['label'], r['seed']): {'commit': report['commit']} | r for r in report['runs']}


def _what_is_trained(config_json: dict) -> dict:
  """A config's flat JSON without where its data was prepared (the one path it names);
  a setting it lacks (added to configs/default.py since it was saved) at its default."""
  return config_lib.flat_with_defaults(config_json) | {'data.tfds_data_dir': ''}


def _trained_today(config_json: dict) -> tuple[dict, int]:
  """What a config trains on today: the config and its data's generator revision."""
  return (_what_is_trained(config_json),
          synthetic.REVISIONS.get(config_json['data']['source'], 1))


def _trained_as(result: dict) -> tuple[dict, int]:
  """What a saved result was trained on: its config and its data's revision (a result
  saved before revisions were recorded had the first)."""
  return _what_is_trained(result['config']), result.get('data_revision', 1)


def _still_trained_so(kept: dict, grid, data_dir: pathlib.Path) -> dict:
  """The results of `kept` that `grid` would train the same way today (its row still
  there, the same config): the others are not this grid's results any more."""
  runs = {run.label: run for run in grid.runs}
  return {(label, seed): result for (label, seed), result in kept.items()
          if label in runs and 'config' in result and _trained_as(result) == _trained_today(
              json.loads(make_config(runs[label], grid, seed, data_dir).to_json_best_effort()))}


def train_one(run, grid, seed: int, workdir: pathlib.Path, data_dir: pathlib.Path,
              kept: dict | None = None) -> dict:
  """Trains one (run, seed) (through its curriculum) and evaluates it; or, where its
  workdir has them, resumes its training, or returns its result; or returns `kept`
  (a result from the results file) when it was trained with the same config."""
  config = make_config(run, grid, seed, data_dir)
  config_json = json.loads(config.to_json_best_effort())
  trained_as = _trained_today(config_json)
  if (kept is not None and 'config' in kept and _trained_as(kept) == trained_as
      and not (workdir / _RESULT).exists()):
    print(f'[ablate] {run.label} seed {seed}: kept from the results file (commit '
          f'{kept["commit"]})', flush=True)
    return kept
  saved = workdir / _RESULT
  if saved.is_file():
    result = json.loads(saved.read_text())
    if _trained_as(result) != trained_as:
      raise UserError(f'{workdir} holds a result of another config or data revision: '
                      'name a new --workdir')
    return result
  start = time.perf_counter()
  for index, stage in enumerate(run.stages):
    stage_config = make_config(dataclasses.replace(run, overrides=run.overrides | stage),
                               grid, seed, data_dir)
    stage_config.init_from = str(workdir / f'stage{index - 1}') if index else ''
    trainer.train_and_evaluate(stage_config, workdir / f'stage{index}')
  if run.stages:
    config.init_from = str(workdir / f'stage{len(run.stages) - 1}')
  final = trainer.train_and_evaluate(config, workdir)
  train_seconds = time.perf_counter() - start  # a resumed run's: its last piece's
  train_records = read_metrics(workdir, 'train')
  validation = read_metrics(workdir, 'validation')
  speeds = [r['tokens_per_second'] for r in train_records if 'tokens_per_second' in r]
  reached = [r['step'] for r in validation if r.get('accuracy', 0.0) >= SUCCESS_ACCURACY]
  result = {
      'label': run.label, 'seed': seed, 'commit': provenance()['commit'],
      'source': config.data.source,
      'layout': config.data.layout,
      'params': count_params(config), 'steps': config.train.num_steps,
      'stages': [dict(stage) for stage in run.stages],
      'segment_len': config.model.segment_len, 'num_segments': config.model.num_segments,
      'tokens_per_second': float(np.mean(speeds)) if speeds else None,
      'train_seconds': train_seconds, 'final': final,
      'loss_curve': [[r['step'], r['loss']] for r in train_records],
      'validation_curve': [[r['step'], r.get('accuracy')] for r in validation],
      'steps_to_99': reached[0] if reached else None,
  }
  if builders.is_synthetic(config.data):
    result |= evaluate_distances(config, workdir)
  elif grid.documents:
    result |= evaluate_documents(config, workdir)
  result |= {'config': config_json, 'data_revision': trained_as[1]}
  saved.write_text(json.dumps(result))
  return result


def parse_settings(items: list[str]) -> dict:
  """--set items ('key=value', the value a Python literal or else a string) as a dict."""
  settings = {}
  for item in items:
    key, equals, text = item.partition('=')
    if not equals or not key:
      raise ConfigError(f'--set wants key=value, got {item!r}')
    try:
      settings[key] = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      settings[key] = text
  return settings


def run_grid(grid_name: str, out: pathlib.Path, workdir: pathlib.Path,
             name: str | None = None, only: tuple[str, ...] = (),
             settings: dict | None = None, seeds: tuple[int, ...] = ()) -> dict:
  """Trains and evaluates every (run, seed) of the grid; writes the results files.

  `settings` override every run's config after the grid's own (a bigger budget, say)."""
  grid, name = GRIDS[grid_name], name or grid_name
  if settings:
    grid = dataclasses.replace(grid, runs=tuple(
        dataclasses.replace(r, overrides=r.overrides | settings) for r in grid.runs))
  whole_grid = grid
  if only:
    grid = dataclasses.replace(grid, runs=tuple(
        r for r in grid.runs if r.label.startswith(tuple(only))))
    if not grid.runs:
      raise UserError(f'--only={",".join(only)} starts no label of --grid={grid_name} '
                      f'({", ".join(r.label for r in whole_grid.runs)})')
  if seeds:
    grid = dataclasses.replace(grid, seeds=seeds)
  for run in grid.runs:  # an unknown key, a value out of range or a task fail here
    with _named(run):
      config = make_config(run, grid, grid.seeds[0], workdir / 'tfds')
      config_lib.check_ranges(config)
      if builders.is_synthetic(config.data):
        builders.synthetic_config(config.data, *builders.row_layout(config))
  out.mkdir(parents=True, exist_ok=True)
  kept = _still_trained_so(kept_results(out / f'{name}.json'), whole_grid, workdir / 'tfds')
  start = time.perf_counter()
  results = {}
  # Seed by seed, the results files rewritten after every run: a grid stopped part way
  # keeps every finished run in them (a first seed first), and goes on from there. The
  # file's results of runs this command does not reach (later seeds, other rows) stay.
  for seed in grid.seeds:
    for run in grid.runs:
      print(f'[ablate] {run.label} seed {seed}', flush=True)
      with _named(run):
        results[run.label, seed] = train_one(
            run, grid, seed, workdir / grid_name / run.label / f'seed{seed}',
            workdir / 'tfds', kept.get((run.label, seed)))
      report = _write(whole_grid, grid_name, name, settings,
                      list((kept | results).values()), time.perf_counter() - start, out)
  return report


def _write(grid, grid_name: str, name: str, settings: dict | None, results: list[dict],
           wall_seconds: float, out: pathlib.Path) -> dict:
  """Writes the results files of `results` (every run so far), in the grid's order."""
  order = {run.label: index for index, run in enumerate(grid.runs)}
  results = sorted(results, key=lambda r: (order[r['label']], r['seed']))
  report = {'name': name, 'grid': grid_name, **provenance(),
            'seeds': sorted({r['seed'] for r in results}),
            'wall_seconds': wall_seconds, 'platform': jax.devices()[0].platform,
            'settings': settings or {},
            'summary': summarize(results), 'runs': results}
  write_report(report, out)
  return report


@contextlib.contextmanager
def _named(run):
  """A refusal of the data layer or the trainer, with the grid row it came from."""
  try:
    yield
  except UserError as error:
    raise type(error)(f'{run.label}: {error}') from None


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
  tfds.disable_progress_bar()
  try:
    settings = parse_settings(_SET.value)
    report = run_grid(_GRID.value, pathlib.Path(_OUT.value), pathlib.Path(_WORKDIR.value),
                      _NAME.value, tuple(_ONLY.value), settings,
                      tuple(int(seed) for seed in _SEEDS.value))
  except UserError as error:  # one line, the status of the programs' bad input
    print(f'[ablate] error: {error}', file=sys.stderr)
    sys.exit(error.exit_status)
  name = report['name']
  print(f'[ablate] wrote {_OUT.value}/{name}.md, .json, _accuracy.png, _loss.png '
        f'in {report["wall_seconds"] / 60:.1f} min')
  if leaks_found := found_leaks(report):
    print(f'[ablate] LEAK: above chance without memory: {", ".join(leaks_found)}',
          file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  host_memory.run(app.run, main)
