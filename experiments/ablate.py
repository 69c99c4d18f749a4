"""Trains an ablation grid, evaluates it per distance, writes results tables and plots.

  python experiments/ablate.py --grid=quick|core|capacity|text|delta_knobs|full|curriculum|tiny
                               [--out=experiments/results]
                               [--workdir=runs/ablate] [--name=NAME] [--only=recall/,...]
                               [--seeds=0,1] [--set=train.num_steps=8000 --set=train.batch_size=64 ...]

For every (config, seed) of the grid: memgpt_jax.training.trainer.train_and_evaluate
trains it in <workdir>/<grid>/<label>/seed<k>, the final checkpoint is restored and
evaluation.Evaluator scores every evaluation split (one per distance) of a synthetic task,
or bits per byte on text. Writes <out>/<name>.md (the table: mean ± std over seeds),
<name>.json (every number, per seed too), <name>_accuracy.png (accuracy against
distance) and <name>_loss.png (training loss curves).

A model whose memory is off and whose pointer sees only the current segment cannot
know an answer D >= 1 segments back: its accuracy there must be at chance. Above
chance (4 standard errors of a binomial) is reported as a LEAK and the driver exits 1.
"""

import ast
import dataclasses
import math
import pathlib
import shutil
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
import matplotlib
import numpy as np
import tensorflow_datasets as tfds

from memgpt_jax import config_lib
from memgpt_jax.data import builders
from memgpt_jax.data import synthetic
from memgpt_jax.data.tokenizer import make_tokenizer
from memgpt_jax.errors import ConfigError
from memgpt_jax.model.transformer import MemGPT
from memgpt_jax.training.partitioner import make_partitioner
from memgpt_jax.provenance import provenance, write_results
from memgpt_jax.training import evaluation, pretrained, trainer
from memgpt_jax.training.metrics_writer import read_metrics
from memgpt_jax.training.optimizer import make_optimizer

matplotlib.use('Agg')
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

ROOT = pathlib.Path(__file__).resolve().parents[1]
_OUT = flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
_WORKDIR = flags.DEFINE_string('workdir', str(ROOT / 'runs' / 'ablate'), 'Training runs.')
_NAME = flags.DEFINE_string('name', None, 'Results file name (default: the grid name).')
_SEEDS = flags.DEFINE_list('seeds', [], "Train these seeds instead of the grid's.")
_SET = flags.DEFINE_multi_string('set', [], "Config overrides for every run, after the grid's "
                                 'own: key=value, the value a Python literal.')
_ONLY = flags.DEFINE_list('only', [], 'Run only the grid entries whose label starts with '
                          'one of these, e.g. recall/,text/.')

LEAK_STANDARD_ERRORS = 4.0
SUCCESS_ACCURACY = 0.99  # "steps to 99%": the first validation at or above this


@dataclasses.dataclass(frozen=True)
class Run:
  """One grid entry: an ablation config with a few overrides, trained once per seed."""
  label: str
  config: str  # relative to the repository root
  overrides: dict = dataclasses.field(default_factory=dict)
  # Memory and pointer off, one segment spanning the row, and the MLP widened to the
  # parameter count of the MemGPT it is compared with.
  plain_gpt: bool = False
  # A curriculum: easier tasks trained first, each stage fine-tuned from the one
  # before (--config.init_from); the run itself is the last stage. Overrides per stage.
  stages: tuple[dict, ...] = ()


@dataclasses.dataclass(frozen=True)
class Grid:
  runs: tuple[Run, ...]
  seeds: tuple[int, ...]
  overrides: dict  # applied to every run first


_SYNTHETIC = 'configs/synthetic.py'
# The pointer tasks sit inside one segment: the pointer copies, no memory is needed.
_IN_WINDOW = {'model.num_segments': 1, 'data.task.train_distances': (0,),
              'data.task.eval_distances': (0,), 'train.eval_every': 25}
_TEXT = {'data.source': 'pystdlib', 'model.pointer.cache_len': 32, 'train.eval_every': 10**6}


# The easy stages of the recall curriculum: distances 0 and 1 only.
_RECALL_STAGE = {'data.task.train_distances': (0, 1), 'data.task.eval_distances': (0, 1)}


def _variant(label: str, variants: str, overrides: dict | None = None, **kwargs) -> Run:
  """A run of configs/synthetic.py with its named variants (e.g. 'slots,gru')."""
  config = f'{_SYNTHETIC}:{variants}' if variants else _SYNTHETIC
  return Run(label, config, overrides or {}, **kwargs)


def _pointer_pair(task: str, steps: int) -> tuple[Run, ...]:
  overrides = _IN_WINDOW | {'data.source': task, 'train.num_steps': steps}
  return (_variant(f'{task}/pointer_on', '', overrides),
          _variant(f'{task}/pointer_off', 'pointer_off', overrides))


def _text(steps: int, memories: tuple[str, ...] = ('delta', 'slots')) -> tuple[Run, ...]:
  """MemGPT with each memory kind, and the plain GPT of the first one's parameters."""
  overrides = _TEXT | {'train.num_steps': steps}
  runs = tuple(_variant(f'text/memgpt_{kind}', '' if kind == 'delta' else kind, overrides)
               for kind in memories)
  return runs + (_variant('text/plain_gpt', '', overrides, plain_gpt=True),)


def _memories(names: tuple[str, ...], steps: int, source: str = 'recall') -> tuple[Run, ...]:
  """Runs named by their variants: 'delta' is the base config (the delta memory)."""
  return tuple(_variant(f'{source}/{name.replace(",", "_")}', '' if name == 'delta' else name,
                        {'data.source': source, 'train.num_steps': steps}) for name in names)


# Pointer on/off inside one segment and MemGPT against the plain GPT on text.
_POINTER_AND_TEXT = (_pointer_pair('induction', 1000) + _pointer_pair('copy', 1000)
                     + _text(500))
# The delta memory's knobs, each changed alone (configs/synthetic.py VARIANTS).
_DELTA_KNOBS = ('no_key_shift', 'elu_plus_one', 'identity_map', 'fixed_beta', 'pointer_beta',
                'decay', 'head_gate', 'no_gate', 'wide_keys', 'sparse_beta',
                'sparse_beta,write_cost')
_SLOT_KNOBS = ('slots,gru', 'slots,overwrite', 'slots,slots_8', 'slots,slots_32',
               'slots,slots_128')
# Core recall is also scored at 16x the trained rows (D = 63: 64 segments).
_LONG_EVAL = {'data.task.eval_distances': (0, 1, 2, 4, 7, 15, 63)}



def _capacity(pairs: tuple[int, ...], steps: int) -> tuple[Run, ...]:
  """Recall against the number of pairs: the context spread over 4 segments (the memory
  must accumulate it), queries 2 segments after it. Delta with d_k = 64, 64 slots, no
  memory, and a plain GPT attending over the whole row (the upper bound)."""
  runs = []
  for count in pairs:
    task = {'data.source': 'recall', 'train.num_steps': steps, 'model.num_segments': 6,
            'data.task.num_pairs': count, 'data.task.num_queries': min(count, 8),
            'data.task.num_keys': 128, 'data.task.context_segments': 4,
            'data.task.train_distances': (1, 2), 'data.task.eval_distances': (2,)}
    runs += [_variant(f'recall/pairs_{count}_delta', 'wide_keys', task),
             _variant(f'recall/pairs_{count}_slots', 'slots',
                      task | {'model.memory.slots.num_slots': 64}),
             _variant(f'recall/pairs_{count}_memory_off', 'memory_off', task),
             _variant(f'recall/pairs_{count}_full_attention', '', task, plain_gpt=True)]
  return tuple(runs)


GRIDS = {
    # Seconds: the driver end to end in the tests.
    'tiny': Grid(
        runs=(dataclasses.replace(_memories(('memory_off',), 3)[0],
                                  stages=({'train.num_steps': 2},)),)  # a curriculum
        + _text(2)[-1:],
        seeds=(0,),
        overrides={'model.d_model': 16, 'model.num_heads': 2, 'model.mlp_dim': 32,
                   'model.segment_len': 32, 'model.num_segments': 2,
                   'model.memory.slots.num_slots': 4, 'model.pointer.head_dim': 8,
                   'data.task.num_pairs': 3, 'data.task.num_queries': 2,
                   'data.task.num_train': 64, 'data.task.num_eval': 32,
                   'data.task.train_distances': (1,), 'data.task.eval_distances': (1, 3),
                   'data.task.copy_tokens': 3, 'data.task.copy_region': 8,
                   'train.batch_size': 8, 'train.eval_batches': 4, 'train.log_every': 2,
                   'train.warmup_steps': 1}),
    # Under 15 minutes on a 2-core CPU: one seed, the headline comparisons only.
    'quick': Grid(
        runs=_memories(('delta', 'slots', 'memory_off'), 300) + _pointer_pair('induction', 150)
        + _text(100, memories=('delta',)),
        seeds=(0,),
        overrides={'data.task.eval_distances': (0, 1, 2, 4, 7), 'train.eval_batches': 4}),
    # The headline numbers, three seeds: recall with the delta memory, the slot memory
    # (two gates) and none, to 16x the trained rows; pointer on/off on induction and
    # copying; MemGPT with each memory against the plain GPT (equal parameters) on text.
    'core': Grid(
        runs=tuple(dataclasses.replace(r, overrides=r.overrides | _LONG_EVAL) for r in
                   _memories(('delta', 'slots', 'slots,gru', 'memory_off'), 1500))
        + _POINTER_AND_TEXT,
        seeds=(0, 1, 2),
        overrides={}),
    # Recall through a curriculum (slot memory): one key-value pair at distance <= 1,
    # then two pairs, then the task itself (six pairs, distances 0-3); against memory off.
    'curriculum': Grid(
        runs=(_variant('recall/slots_curriculum', 'slots',
                       {'data.source': 'recall', 'train.num_steps': 3000},
                       stages=(_RECALL_STAGE | {'data.task.num_pairs': 1,
                                                'data.task.num_queries': 1,
                                                'train.num_steps': 3000},
                               _RECALL_STAGE | {'data.task.num_pairs': 2,
                                                'data.task.num_queries': 2,
                                                'train.num_steps': 1500})),
              _variant('recall/memory_off', 'memory_off',
                       {'data.source': 'recall', 'train.num_steps': 7500})),
        seeds=(0, 1, 2),
        overrides={}),
    # Text at the default config (make train's model and budget): MemGPT with each
    # memory kind against the plain GPT of the delta MemGPT's parameters, three seeds.
    'text': Grid(
        runs=(Run('text/memgpt_delta', 'configs/default.py'),
              Run('text/memgpt_slots', 'configs/default.py', {'model.memory.kind': 'slots'}),
              Run('text/plain_gpt', 'configs/default.py', plain_gpt=True)),
        seeds=(0, 1, 2),
        overrides={}),
    # The delta memory's knobs on recall, each changed alone, three seeds, at the budget
    # where the base config is past 99% (step 200-300).
    'delta_knobs': Grid(
        runs=_memories(('delta',) + _DELTA_KNOBS + ('bptt_truncated', 'one_layer'), 600),
        seeds=(0, 1, 2),
        overrides={}),
    # Capacity: accuracy against the number of key-value pairs, three seeds.
    'capacity': Grid(runs=_capacity((6, 16, 32, 64), 1000), seeds=(0, 1, 2), overrides={}),
    # The whole grid, three seeds: every knob of both memories on recall, passkey and
    # selective copying across segments, and the core pointer and text rows.
    'full': Grid(
        runs=_memories(('delta', 'memory_off') + _DELTA_KNOBS
                       + ('bptt_truncated', 'one_layer', 'slots') + _SLOT_KNOBS, 1500)
        + _memories(('delta', 'slots', 'memory_off'), 1500, source='passkey')
        + _memories(('delta', 'slots', 'memory_off'), 1500, source='copy')
        + _POINTER_AND_TEXT,
        seeds=(0, 1, 2),
        overrides={}),
}


_GRID = flags.DEFINE_enum('grid', 'quick', list(GRIDS),
                          'Which grid to run.')


def make_config(run: Run, grid: Grid, seed: int, data_dir: pathlib.Path):
  config = config_lib.load_config(ROOT / run.config)
  for key, value in (grid.overrides | run.overrides).items():
    config_lib.set_dotted(config, key, value)
  if run.plain_gpt:
    config = _with_params(config_lib.plain_gpt(config), _count_params(config))
  config.seed = seed
  config.data.shuffle_seed = seed
  config.data.tfds_data_dir = str(data_dir)
  return config


def _restore_params(config, workdir: pathlib.Path, vocab_size: int):
  """The final checkpoint's params, and the partitioner that lays them out."""
  model = MemGPT(config_lib.validate(config, vocab_size))
  partitioner = make_partitioner(config, model, make_optimizer(config.train))
  return model, partitioner, pretrained.load_params(workdir, partitioner.abstract_state.params)


def _num_answers(config, split: str) -> int:
  """Answers the Evaluator scores on `split` (its first eval_batches * batch_size rows)."""
  task = config.data.task
  rows = min(task.num_eval, config.train.eval_batches * config.train.batch_size)
  example = synthetic.make_example(config.data.source, task, *builders.row_layout(config),
                                   split, 0)
  return rows * int(example['answers'][1:].sum())


def leaks(accuracy: float, chance: float, answers: int) -> bool:
  """True when `accuracy` over `answers` is too far above chance to be luck."""
  standard_error = math.sqrt(chance * (1 - chance) / max(answers, 1))
  return accuracy > chance + LEAK_STANDARD_ERRORS * standard_error


def _sees_only_its_segment(config) -> bool:
  """No memory, no pointer cache and an attention window of one segment of the row (a
  plain GPT over the whole row sees every segment: it is a bound, not a leak check)."""
  model = config.model
  return (not model.memory.enabled
          and (not model.pointer.enabled or model.pointer.cache_len == 0)
          and builders.row_layout(config)[0] == model.segment_len)


def evaluate_distances(config, workdir: pathlib.Path) -> dict:
  """Accuracy per evaluation distance (its own split), with chance and the leak check."""
  tokenizer = make_tokenizer(config.data)
  model, partitioner, params = _restore_params(config, workdir, tokenizer.vocab_size)
  eval_model = MemGPT(model.cfg)
  task = config.data.task
  chance = synthetic.chance_accuracy(config.data.source, task)
  distances = {}
  for distance in task.eval_distances:
    split = synthetic.eval_split(distance)
    metrics = evaluation.Evaluator(config, tokenizer, eval_model, partitioner, split)(params)
    answers = _num_answers(config, split)
    checked = distance >= 1 and _sees_only_its_segment(config)
    distances[str(distance)] = {
        'accuracy': metrics['accuracy'], 'loss': metrics['loss'], 'answers': answers,
        'segments': distance + 1, 'checked': checked,
        'leak': checked and leaks(metrics['accuracy'], chance, answers)}
  return {'chance': chance, 'distances': distances}


def _count_params(config) -> int:
  cfg = config_lib.validate(config, make_tokenizer(config.data).vocab_size)
  shapes = jax.eval_shape(MemGPT(cfg).init, jax.random.key(0),
                          jax.ShapeDtypeStruct((1, cfg.seq_len), np.int32))
  return sum(math.prod(x.shape) for x in jax.tree.leaves(shapes))


def _with_params(config, target: int):
  """`config` with model.mlp_dim set so the model has about `target` parameters."""
  def count(mlp_dim: int) -> int:
    resized = config.copy_and_resolve_references()
    resized.model.mlp_dim = mlp_dim
    return _count_params(resized)
  base = config.model.mlp_dim
  low, high = count(base), count(2 * base)  # the count is linear in mlp_dim
  config.model.mlp_dim = max(1, round(base + (target - low) * base / (high - low)))
  return config


def train_one(run: Run, grid: Grid, seed: int, workdir: pathlib.Path,
              data_dir: pathlib.Path) -> dict:
  """Trains one (run, seed) from scratch (through its curriculum) and evaluates it."""
  config = make_config(run, grid, seed, data_dir)
  shutil.rmtree(workdir, ignore_errors=True)
  start = time.perf_counter()
  for index, stage in enumerate(run.stages):
    stage_config = make_config(dataclasses.replace(run, overrides=run.overrides | stage),
                               grid, seed, data_dir)
    stage_config.init_from = str(workdir / f'stage{index - 1}') if index else ''
    trainer.train_and_evaluate(stage_config, workdir / f'stage{index}')
  if run.stages:
    config.init_from = str(workdir / f'stage{len(run.stages) - 1}')
  final = trainer.train_and_evaluate(config, workdir)
  train_seconds = time.perf_counter() - start
  train_records = read_metrics(workdir, 'train')
  validation = read_metrics(workdir, 'validation')
  speeds = [r['tokens_per_second'] for r in train_records if 'tokens_per_second' in r]
  reached = [r['step'] for r in validation if r.get('accuracy', 0.0) >= SUCCESS_ACCURACY]
  result = {
      'label': run.label, 'seed': seed, 'source': config.data.source,
      'params': _count_params(config), 'steps': config.train.num_steps,
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
  return result


def _mean_std(values: list) -> tuple[float, float] | None:
  values = [v for v in values if v is not None]
  if not values:
    return None
  return float(np.mean(values)), float(np.std(values))


def summarize(results: list[dict]) -> list[dict]:
  """One row per label: mean and std over seeds of every reported number."""
  rows = []
  for label in dict.fromkeys(r['label'] for r in results):
    runs = [r for r in results if r['label'] == label]
    first = runs[0]
    row = {'label': label, 'source': first['source'], 'params': first['params'],
           'steps': first['steps'], 'seeds': [r['seed'] for r in runs],
           'tokens_per_second': _mean_std([r['tokens_per_second'] for r in runs]),
           'steps_to_99': [r['steps_to_99'] for r in runs],
           'final_accuracy': _mean_std([r['final'].get('accuracy') for r in runs])}
    for key in ('bits_per_byte', 'pointer_gate', 'copy_share'):
      row[key] = _mean_std([r['final'].get(key) for r in runs])
    if 'distances' in first:
      row['chance'] = first['chance']
      row['distances'] = {
          d: {'accuracy': _mean_std([r['distances'][d]['accuracy'] for r in runs]),
              'segments': first['distances'][d]['segments'],
              'checked': first['distances'][d]['checked'],
              'leak': any(r['distances'][d]['leak'] for r in runs)}
          for d in first['distances']}
    rows.append(row)
  return rows


def _fmt(stat: tuple[float, float] | None, scale: float = 1.0, digits: int = 1) -> str:
  if stat is None:
    return '—'
  mean, std = stat
  return f'{mean * scale:.{digits}f} ± {std * scale:.{digits}f}'


def _steps_to_99(steps: list) -> str:
  return ', '.join('not reached' if s is None else str(s) for s in steps)


def markdown(report: dict) -> str:
  """The results page: one table per task (accuracy in %, mean ± std over seeds)."""
  name, rows, settings = report['name'], report['summary'], report['settings']
  seeds = rows[0]['seeds'] if rows else []
  lines = [f'# Ablation results: {name}', '',
           f'`{report["command"]}` at commit {report["commit"]}: grid `{report["grid"]}`, '
           f'seeds {seeds}, {report["wall_seconds"] / 60:.1f} min wall time on '
           f'{report["platform"].upper()}. Accuracy counts answer positions only, '
           'in %, mean ± std over seeds. Distance D: queries D segments after the '
           'context (a row of D + 1 segments; a context over C segments: D counts from '
           'its last, a row of C + D). Leak check: memory off and no pointer '
           f'cache must be at chance for D >= 1 (> {LEAK_STANDARD_ERRORS:g} binomial '
           'standard errors above it fails).', '']
  if settings:
    lines += ['Every run also had: '
              + ', '.join(f'`{key}={value!r}`' for key, value in settings.items()) + '.', '']
  for source in dict.fromkeys(r['source'] for r in rows):
    group = [r for r in rows if r['source'] == source]
    lines += [f'## {source}', '']
    if 'distances' in group[0]:
      distances = list(group[0]['distances'])
      header = (['config', 'params', 'steps'] + [f'D={d}' for d in distances]
                + ['chance', 'steps to 99% (per seed)', 'tokens/s', 'leak check'])
      lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
      for r in group:
        checked = [v for v in r['distances'].values() if v['checked']]
        leak = ('LEAK' if any(v['leak'] for v in checked) else 'at chance') if checked else ''
        cells = ([r['label'], f'{r["params"]:,}', str(r['steps'])]
                 + [_fmt(r['distances'][d]['accuracy'], 100) for d in distances]
                 + [f'{100 * r["chance"]:.1f}', _steps_to_99(r['steps_to_99']),
                    _fmt(r['tokens_per_second'], digits=0), leak])
        lines.append('| ' + ' | '.join(cells) + ' |')
    else:
      header = ['config', 'params', 'steps', 'bits per byte', 'pointer gate', 'copy share',
                'tokens/s']
      lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
      for r in group:
        cells = [r['label'], f'{r["params"]:,}', str(r['steps']),
                 _fmt(r['bits_per_byte'], digits=3), _fmt(r['pointer_gate'], digits=3),
                 _fmt(r['copy_share'], digits=3), _fmt(r['tokens_per_second'], digits=0)]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines.append('')
  lines += [f'![accuracy against distance]({name}_accuracy.png)', '',
            f'![training loss]({name}_loss.png)', '']
  return '\n'.join(lines)


def _plot_learning_curves(ax, source: str, results: list[dict]):
  """Validation accuracy against step (mean over seeds): a task inside one segment has
  one distance, and what differs between its configs is how soon they learn it."""
  for label in dict.fromkeys(r['label'] for r in results if r['source'] == source):
    curves = [np.asarray(r['validation_curve'], float) for r in results if r['label'] == label]
    length = min(len(c) for c in curves)
    mean = np.mean([c[:length, 1] for c in curves], axis=0)
    ax.plot(curves[0][:length, 0], 100 * mean, label=label.split('/')[-1])
  ax.axhline(100 * SUCCESS_ACCURACY, color='gray', linestyle=':', label='99%')
  ax.set(title=source, xlabel='step', ylabel='validation answer accuracy (%)', ylim=(0, 102))
  ax.legend(fontsize=8)


def plot(name: str, results: list[dict], rows: list[dict], out: pathlib.Path):
  """Accuracy against distance per task (against step for a task of one distance), and
  the training loss curves (mean over seeds)."""
  tasks = [s for s in dict.fromkeys(r['source'] for r in rows)
           if 'distances' in next(r for r in rows if r['source'] == s)]
  fig, axes = plt.subplots(1, max(len(tasks), 1), figsize=(5 * max(len(tasks), 1), 4),
                           squeeze=False)
  for ax, source in zip(axes[0], tasks):
    if all(len(r['distances']) == 1 for r in rows if r['source'] == source):
      _plot_learning_curves(ax, source, results)
      continue
    for r in (r for r in rows if r['source'] == source):
      distances = [int(d) for d in r['distances']]
      stats = [r['distances'][str(d)]['accuracy'] for d in distances]
      ax.errorbar(distances, [100 * m for m, _ in stats], yerr=[100 * s for _, s in stats],
                  marker='o', capsize=3, label=r['label'].split('/')[-1])
      chance = 100 * r['chance']
    ax.axhline(chance, color='gray', linestyle='--', label='chance')
    ax.set(title=source, xlabel='distance D (segments)', ylabel='answer accuracy (%)',
           ylim=(0, 102))
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(out / f'{name}_accuracy.png', dpi=100)
  plt.close(fig)

  sources = list(dict.fromkeys(r['source'] for r in rows))
  fig, axes = plt.subplots(1, len(sources), figsize=(5 * len(sources), 4), squeeze=False)
  for ax, source in zip(axes[0], sources):
    for label in dict.fromkeys(r['label'] for r in results if r['source'] == source):
      curves = [np.asarray(r['loss_curve']) for r in results if r['label'] == label]
      length = min(len(c) for c in curves)
      mean = np.mean([c[:length, 1] for c in curves], axis=0)
      ax.plot(curves[0][:length, 0], mean, label=label.split('/')[-1])
    ax.set(title=source, xlabel='step', ylabel='training loss (nats/token)', yscale='log')
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(out / f'{name}_loss.png', dpi=100)
  plt.close(fig)


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
  if only:
    grid = dataclasses.replace(grid, runs=tuple(
        r for r in grid.runs if r.label.startswith(tuple(only))))
  if seeds:
    grid = dataclasses.replace(grid, seeds=seeds)
  if settings:
    grid = dataclasses.replace(grid, runs=tuple(
        dataclasses.replace(r, overrides=r.overrides | settings) for r in grid.runs))
  for run in grid.runs:  # an unknown key fails here, before any training
    make_config(run, grid, grid.seeds[0], workdir / 'tfds')
  out.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  results = []
  for run in grid.runs:
    for seed in grid.seeds:
      print(f'[ablate] {run.label} seed {seed}', flush=True)
      results.append(train_one(run, grid, seed, workdir / grid_name / run.label /
                               f'seed{seed}', workdir / 'tfds'))
  wall_seconds = time.perf_counter() - start
  rows = summarize(results)
  report = {'name': name, 'grid': grid_name, **provenance(), 'seeds': list(grid.seeds),
            'wall_seconds': wall_seconds, 'platform': jax.devices()[0].platform,
            'settings': settings or {},
            'summary': rows, 'runs': results}
  write_report(report, out)
  return report


def write_report(report: dict, out: pathlib.Path):
  """<name>.json (every number), .md (the tables) and the two plots."""
  write_results(out, report['name'], report, markdown(report))
  plot(report['name'], report['runs'], report['summary'], out)


def found_leaks(report: dict) -> list[str]:
  return [f'{r["label"]} D={d}' for r in report['summary']
          for d, v in r.get('distances', {}).items() if v['leak']]


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
  tfds.disable_progress_bar()
  try:
    settings = parse_settings(_SET.value)
    report = run_grid(_GRID.value, pathlib.Path(_OUT.value), pathlib.Path(_WORKDIR.value),
                      _NAME.value, tuple(_ONLY.value), settings,
                      tuple(int(seed) for seed in _SEEDS.value))
  except ConfigError as error:
    sys.exit(f'[ablate] {error}')
  name = report['name']
  print(f'[ablate] wrote {_OUT.value}/{name}.md, .json, _accuracy.png, _loss.png '
        f'in {report["wall_seconds"] / 60:.1f} min')
  if leaks_found := found_leaks(report):
    print(f'[ablate] LEAK: above chance without memory: {", ".join(leaks_found)}',
          file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  app.run(main)
