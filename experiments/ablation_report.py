"""Reporting an ablation grid: mean and std over seeds of every number, the results
page (one table per task) and the plots (accuracy against distance, loss curves; on
whole documents, bits per byte against position in the document)."""

import pathlib

import matplotlib
import numpy as np

from ablation_eval import LEAK_STANDARD_ERRORS
from memgpt_jax.provenance import write_results

matplotlib.use('Agg')
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

SUCCESS_ACCURACY = 0.99  # "steps to 99%": the first validation at or above this
# A seq2seq run's scores of its greedy targets (memgpt_jax/text_metrics.py), in %.
TASK_METRICS = ('exact_match', 'rougeL', 'bleu')


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
    for key in ('bits_per_byte', 'pointer_gate', 'copy_share', 'loss') + TASK_METRICS:
      row[key] = _mean_std([r['final'].get(key) for r in runs])
    if 'documents' in first:
      row['layout'] = first['layout']
      row['documents'] = {
          kind: {key: _mean_std([r['documents'][kind][key] for r in runs])
                 for key in metrics if key.startswith('bits_per_byte')}
          for kind, metrics in first['documents'].items()}
    if 'distances' in first:
      row['chance'] = first['chance']
      row['distances'] = _distances(runs)
    rows.append(row)
    if 'distances' in first and 'reset_accuracy' in next(iter(first['distances'].values())):
      rows.append(row | {'label': f'{label} (state reset every row)',
                         'distances': _distances(runs, 'reset_')})
  return rows


def _distances(runs: list[dict], kind: str = '') -> dict:
  """Per distance over the runs' seeds: accuracy (mean, std) and the leak check; `kind`
  'reset_': read from a fresh state at every row (streams runs)."""
  first = runs[0]['distances']
  distances = {d: {'accuracy': _mean_std([r['distances'][d][f'{kind}accuracy'] for r in runs]),
                   'segments': first[d]['segments'], 'checked': first[d][f'{kind}checked'],
                   'leak': any(r['distances'][d][f'{kind}leak'] for r in runs)}
               for d in first}
  if not kind and all('eval_seconds' in r['distances'][d] for r in runs for d in first):
    for d, row in distances.items():
      row['eval_seconds'] = float(np.mean([r['distances'][d]['eval_seconds'] for r in runs]))
      row['eval_peak_rss_mib'] = max(r['distances'][d]['eval_peak_rss_mib'] for r in runs)
  return distances


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
  trained_at = sorted({r.get('commit', report['commit']) for r in report['runs']})
  if trained_at != [report['commit']]:
    lines += ['The runs were trained at commits ' + ', '.join(trained_at) + ' (a run the '
              'results file held with the same config was kept, not trained again; the '
              'wall time counts the runs trained by the last command).', '']
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
      lines += _evaluation_cost_table(group, distances)
    elif 'documents' in group[0]:
      lines += _documents_table(group)
    elif any(r.get('exact_match') for r in group):
      lines += _task_table(group)
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
  if any('documents' in r for r in rows):
    lines += [f'![bits per byte against position]({name}_positions.png)', '']
  return '\n'.join(lines)


def _evaluation_cost_table(group: list[dict], distances: list[str]) -> list[str]:
  """Each run's evaluation at each distance: seconds (mean over seeds) and the peak
  resident memory while it ran (highest over seeds); runs that did not record it are
  left out."""
  timed = [r for r in group if 'eval_seconds' in r['distances'][distances[0]]]
  if not timed:
    return []
  lines = ['', 'Evaluation at each distance, state carried: seconds / peak resident '
           'memory MiB (the first distance also compiles the evaluation step).', '',
           '| config | ' + ' | '.join(f'D={d}' for d in distances) + ' |',
           '|' + '---|' * (len(distances) + 1)]
  for r in timed:
    cells = [f'{r["distances"][d]["eval_seconds"]:.0f} s / '
             f'{r["distances"][d]["eval_peak_rss_mib"]:,.0f}' for d in distances]
    lines.append(f'| {r["label"]} | ' + ' | '.join(cells) + ' |')
  return lines


def _task_table(group: list[dict]) -> list[str]:
  """Seq2seq runs: the greedy targets' scores and the targets' loss (teacher forced)."""
  metrics = [key for key in TASK_METRICS if any(r.get(key) for r in group)]
  header = (['config', 'params', 'steps'] + metrics
            + ['target loss (nats/token)', 'bits per byte', 'tokens/s'])
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for r in group:
    cells = ([r['label'], f'{r["params"]:,}', str(r['steps'])]
             + [_fmt(r[key]) for key in metrics]
             + [_fmt(r['loss'], digits=3), _fmt(r['bits_per_byte'], digits=3),
                _fmt(r['tokens_per_second'], digits=0)])
    lines.append('| ' + ' | '.join(cells) + ' |')
  return lines


def as_trained(row: dict) -> str:
  """The whole-document evaluation that reads documents as the run was trained:
  'carried' for streams (where the model has a state to carry), else 'reset'."""
  return 'carried' if row['layout'] == 'streams' and 'carried' in row['documents'] else 'reset'


def _documents_table(group: list[dict]) -> list[str]:
  """Bits per byte over whole validation documents (the state carried through each,
  and reset every row), and by position in the document as the run was trained."""
  buckets = [key.split('/', 1)[1] for key in group[0]['documents']['reset']
             if key.startswith('bits_per_byte/')]
  header = (['config', 'params', 'steps', 'rows', 'seeds', 'bits/byte, state carried',
             'bits/byte, state reset every row']
            + [f'{bucket}, as trained' for bucket in buckets])
  lines = ['Bits per byte over every validation document read whole (mean ± std over '
           'seeds). "as trained": carried for the streams rows, reset every row for '
           'the packed ones. Positions in tokens. Speed is not compared here: the runs '
           'shared the CPU with other work (experiments/bench.py times steps).', '',
           '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for r in group:
    documents = r['documents']
    kind = as_trained(r)
    cells = ([r['label'], f'{r["params"]:,}', str(r['steps']), r['layout'],
              ', '.join(str(seed) for seed in r['seeds']),
              _fmt(documents.get('carried', {}).get('bits_per_byte'), digits=3),
              _fmt(documents['reset']['bits_per_byte'], digits=3)]
             + [_fmt(documents[kind].get(f'bits_per_byte/{b}'), digits=3) for b in buckets])
    lines.append('| ' + ' | '.join(cells) + ' |')
  return lines


def plot_positions(name: str, rows: list[dict], out: pathlib.Path):
  """Bits per byte against position in the document, each run as it was trained."""
  fig, ax = plt.subplots(figsize=(7, 4))
  for r in (r for r in rows if 'documents' in r):
    metrics = r['documents'][as_trained(r)]
    buckets = [key for key in metrics if key.startswith('bits_per_byte/')]
    stats = [metrics[key] for key in buckets]
    ax.errorbar(range(len(buckets)), [m for m, _ in stats], yerr=[s for _, s in stats],
                marker='o', capsize=3, label=r['label'].split('/')[-1])
    ax.set_xticks(range(len(buckets)), [key.split('/', 1)[1] for key in buckets])
  ax.set(xlabel='position in the document (tokens)', ylabel='bits per byte',
         title='whole documents, as trained')
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(out / f'{name}_positions.png', dpi=100)
  plt.close(fig)


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


def write_report(report: dict, out: pathlib.Path):
  """<name>.json (every number), .md (the tables) and the two plots."""
  write_results(out, report['name'], report, markdown(report))
  plot(report['name'], report['runs'], report['summary'], out)
  if any('documents' in r for r in report['summary']):
    plot_positions(report['name'], report['summary'], out)


def found_leaks(report: dict) -> list[str]:
  return [f'{r["label"]} D={d}' for r in report['summary']
          for d, v in r.get('distances', {}).items() if v['leak']]
