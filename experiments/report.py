"""Writes the results tables of the README and the docs pages from the results files in
experiments/results/.

  python experiments/report.py [--check]

A table sits in a page of PAGES between `<!-- table:NAME -->` and `<!-- /table:NAME -->`,
NAME a key of TABLES below: each is made from one results file, never by hand.
--check changes nothing and exits 1 when a table differs from what its file gives
(tests/test_report.py runs it).
"""

import functools
import json
import math
import pathlib
import re
import statistics
import sys

from ablation_report import as_trained
import step_profile

from memgpt_jax.data.synthetic import told

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'experiments' / 'results'


def _load(name: str) -> dict:
  return json.loads((RESULTS / f'{name}.json').read_text())


def _pct(stat) -> str:
  return '—' if stat is None else f'{100 * stat[0]:.1f} ± {100 * stat[1]:.1f}'


def ratio_with_spread(r: dict, spec: str = '{:.3f}') -> str:
  """The model's tokens/s over the plain GPT's, and (where they differ) the lowest and
  highest of its rounds' own ratios."""
  if r['over_plain_gpt'] is None:
    return '-'
  rounds = r['over_plain_gpt_rounds']
  spread = f' ({min(rounds):.2f}-{max(rounds):.2f})' if max(rounds) > min(rounds) else ''
  return spec.format(r['over_plain_gpt']) + spread


def _rows(report: dict) -> dict[str, dict]:
  return {row['label']: row for row in report['summary']}


def _source(report: dict, name: str) -> str:
  commits = sorted({r.get('commit', report['commit']) for r in report.get('runs', [])}
                   or {report['commit']})
  trained = (f'commit {commits[0]}' if len(commits) == 1
             else f'runs trained at commits {", ".join(commits)}')
  return (f'[`{name}`](experiments/results/{name}.md): `{report["command"]}`, '
          f'{trained}, {report["wall_seconds"] / 60:.0f} min on '
          f'{report["platform"].upper()}, seeds {report["seeds"]}')


def _distance_table(report: dict, names: dict[str, str], title: str) -> list[str]:
  """One row per run label: answer accuracy at each evaluation distance."""
  rows = _rows(report)
  distances = list(rows[next(iter(names))]['distances'])
  lines = [f'| {title} | params | ' + ' | '.join(f'D={d}' for d in distances)
           + ' | chance |', '|---|---|' + '---|' * (len(distances) + 1)]
  for label, name in names.items():
    row = rows[label]
    cells = [_pct(row['distances'][d]['accuracy']) for d in distances]
    lines.append(f'| {name} | {row["params"]:,} | ' + ' | '.join(cells)
                 + f' | {100 * row["chance"]:.1f} |')
  return lines


def recall_table() -> str:
  """Core recall (6 pairs) per distance, each memory kind and none."""
  report = _load('core_recall')
  names = {'recall/delta': 'delta memory', 'recall/slots': 'slot memory, fixed gate',
           'recall/slots_gru': 'slot memory, gru gate',
           'recall/memory_off': 'memory off (leak check: chance)'}
  lines = _distance_table(report, names, 'recall (6 pairs), answer accuracy %')
  return '\n'.join(lines + ['', _source(report, 'core_recall')])


def _trained_distance_table(name: str, names: dict[str, str], title: str) -> str:
  """_distance_table of results file `name`, its rows not yet trained left out; `title`
  may name the rows' {segment_len}."""
  report = _load(name)
  trained = _rows(report)
  names = {label: row_name for label, row_name in names.items() if label in trained}
  title = title.format(segment_len=report['runs'][0]['segment_len'])
  return '\n'.join(_distance_table(report, names, title) + ['', _source(report, name)])


def dialogue_table() -> str:
  """The dialogue task: a name told D segments before its question, memory on and off."""
  return _trained_distance_table(
      'dialogue', {'dialogue/delta': 'delta memory', 'dialogue/memory_off': 'memory off'},
      'dialogue, a name asked D segments of {segment_len} tokens after it was told: '
      'answer accuracy %')


# The delta_knobs grid's rows: each knob of model.memory.delta changed alone.
DELTA_KNOB_NAMES = {
    'recall/delta': 'configs/synthetic.py (key shift, silu, learned beta, token read gate)',
    'recall/no_key_shift': 'key_shift=False',
    'recall/elu_plus_one': "feature_map='elu_plus_one'",
    'recall/identity_map': "feature_map='identity'",
    'recall/fixed_beta': "write_strength='fixed' (beta = 1)",
    'recall/pointer_beta': "write_strength='pointer'",
    'recall/sparse_beta': "write_strength='sparse'",
    'recall/sparse_beta_write_cost': "write_strength='sparse', train.write_cost=0.1",
    'recall/decay': "decay='learned'",
    'recall/head_gate': "read_gate='head'",
    'recall/no_gate': "read_gate='none'",
    'recall/wide_keys': 'key_dim=64',
    'recall/bptt_truncated': 'memory.bptt_segments=1 (gradient cut at every segment)',
    'recall/one_layer': "memory.layers='1' (the second layer only)"}


def delta_knobs_table() -> str:
  """Recall per distance with each knob of the delta memory changed alone."""
  return _trained_distance_table('delta_knobs', DELTA_KNOB_NAMES, 'recall (6 pairs), 600 '
                                 'steps: the delta memory with one knob changed, answer '
                                 'accuracy %')


def facts_table() -> str:
  """Facts in language within one row: a place asked D segments after its facts."""
  return _trained_distance_table(
      'facts', {'facts/delta': 'delta memory', 'facts/memory_off': 'memory off'},
      'facts, a place asked D segments of {segment_len} tokens after its facts, within one '
      'row: answer accuracy %')


def facts_streams_table() -> str:
  """Facts in language across training steps: a place asked D segments after its facts,
  read with the state carried, and reset every row (the leak check), memory on and off."""
  return _trained_distance_table('facts_streams', {
      'facts/streams_delta': 'delta memory, state carried',
      'facts/streams_delta (state reset every row)': 'delta memory, state reset every row',
      'facts/streams_memory_off': 'memory off, state carried (the pointer cache)',
      'facts/streams_memory_off (state reset every row)': 'memory off, reset every row',
      'facts/curriculum': 'delta memory after the curriculum, state carried',
      'facts/curriculum (state reset every row)': 'delta memory after the curriculum, reset '
                                                  'every row',
      'facts/sparse_curriculum': 'the same with sparse writes in streams, state carried',
      'facts/sparse_curriculum (state reset every row)': 'the same with sparse writes, reset '
                                                         'every row',
      'facts/sparse_longer_curriculum': 'sparse writes, 3,000 more streams steps, state '
                                        'carried',
      'facts/sparse_longer_curriculum (state reset every row)': 'sparse writes, 3,000 more '
                                                                'streams steps, reset every row',
      'facts/costlier_writes_curriculum': 'the same, then 3,000 at write cost 0.5, state '
                                          'carried',
      'facts/costlier_writes_curriculum (state reset every row)': 'the same at write cost '
                                                                  '0.5, reset every row',
      'facts/wide_keys_curriculum': 'sparse writes, 6,000 streams steps, keys of 64, state '
                                    'carried',
      'facts/wide_keys_curriculum (state reset every row)': 'the same with keys of 64, '
                                                            'reset every row',
      'facts/wide_keys_costlier_curriculum': 'keys of 64, the last 3,000 at write cost 0.5, '
                                             'state carried',
      'facts/wide_keys_costlier_curriculum (state reset every row)': 'keys of 64, write cost '
                                                                     '0.5, reset every row',
      'facts/wide_keys_far_curriculum': 'keys of 64, then 2,000 steps of documents of 42 '
                                        'segments, state carried',
      'facts/wide_keys_far_curriculum (state reset every row)': 'the same, reset every row',
      **{f'facts/wide_keys_priced{suffix}_curriculum{reset}': (
          f'keys of 64, then 2,000 steps with full writes priced at write cost {cost}, '
          + ('reset every row' if reset else 'state carried'))
         for suffix, cost in (('', 0.1), ('_cost1', 1), ('_cost5', 5))
         for reset in ('', ' (state reset every row)')},
      'facts/wide_keys_priced_streams_curriculum': 'keys of 64, both streams stages with '
                                                   'full writes priced at cost 1, state carried',
      'facts/wide_keys_priced_streams_curriculum (state reset every row)': 'the same, reset '
                                                                           'every row'},
      'facts, a place asked D segments of {segment_len} tokens after its facts: answer '
      'accuracy %')


def capacity_table() -> str:
  """Recall at D = 2 against the number of pairs, per memory."""
  report = _load('capacity')
  rows = _rows(report)
  counts = sorted({int(label.split('_')[1]) for label in rows})
  names = {'delta': 'delta memory (d_k = 64)', 'slots': 'slot memory (64 slots)',
           'memory_off': 'memory off', 'full_attention': 'plain GPT attending over the row'}
  lines = ['| recall at D=2, answer accuracy % | ' + ' | '.join(f'{n} pairs' for n in counts)
           + ' |', '|---|' + '---|' * len(counts)]
  for key, name in names.items():
    cells = [_pct(rows[f'recall/pairs_{n}_{key}']['distances']['2']['accuracy'])
             for n in counts]
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines + ['', _source(report, 'capacity')])


def passkey_table() -> str:
  """Passkey accuracy at each filler length, one row per model of each results file,
  and the evaluations' time and memory."""
  files = {'passkey_long': {'delta': 'delta memory (learned beta)'},
           'passkey_long_sparse': {'sparse_beta,write_cost':
                                   'delta memory, sparse beta + train.write_cost 0.1'}}
  reports = {name: _load(name) for name in files}
  lengths = [str(n) for n in reports['passkey_long']['lengths']]
  lines = ['| passkey, answer accuracy % (worst seed) | ' + ' | '.join(f'{int(n):,} filler tokens'
                                                       for n in lengths) + ' |',
           '|---|' + '---|' * len(lengths)]
  every = []
  for name, models in files.items():
    for model, label in models.items():
      seeds = reports[name]['results'][model]
      every += seeds
      scores = [[seed[n]['accuracy'] for seed in seeds] for n in lengths]
      cells = [f'{_pct(_mean_std(s))} ({100 * min(s):.1f})' for s in scores]
      lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
  seconds = [sum(seed[n]['seconds'] for seed in every) / len(every) for n in lengths]
  memory = [max(seed[n]['peak_rss_mib'] for seed in every) for n in lengths]
  lines.append('| one evaluation, seconds (mean) | '
               + ' | '.join(f'{t:.0f}' for t in seconds) + ' |')
  lines.append('| one evaluation, peak resident memory MiB (max) | '
               + ' | '.join(f'{m:.0f}' for m in memory) + ' |')
  return '\n'.join(lines + ['', '\n\n'.join(_source(reports[n], n) for n in files)])


def text_table() -> str:
  """Validation bits per byte on the built-in corpus at the default config."""
  report = _load('text')
  names = {'text/memgpt_delta': 'MemGPT, delta memory',
           'text/memgpt_slots': 'MemGPT, slot memory',
           'text/plain_gpt': 'plain GPT, one 512-token segment (MLP widened to equal params)'}
  lines = ['| stdlib text, default config | params | steps | bits per byte | copy share |',
           '|---|---|---|---|---|']
  for label, name in names.items():
    row = _rows(report)[label]
    copy = '' if row['copy_share'] is None else _num(row['copy_share'], 3)
    lines.append(f'| {name} | {row["params"]:,} | {row["steps"]} | '
                 f'{_num(row["bits_per_byte"], 3)} | {copy} |')
  return '\n'.join(lines + ['', _source(report, 'text')])


# The long_text grid's rows as the README names them.
LONG_TEXT_NAMES = {
    'long_text/gpt_window_T': 'plain GPT, window T (one segment)',
    'long_text/gpt_window_KT': 'plain GPT, window K*T (the whole row)',
    'long_text/both_streams': 'MemGPT, memory + pointer, streams',
    'long_text/both_packed': 'MemGPT, memory + pointer, packed',
    'long_text/memory_streams': 'memory alone, streams',
    'long_text/memory_packed': 'memory alone, packed',
    'long_text/pointer_streams': 'pointer alone, streams',
    'long_text/pointer_packed': 'pointer alone, packed',
    'long_text/both_streams_decay': 'MemGPT, streams, learned decay',
    'long_text/both_streams_pointer_write': 'MemGPT, streams, the pointer chooses writes',
    'long_text/memory_streams_decay': 'memory alone, streams, learned decay',
}


def long_text_table() -> str:
  """Whole-document bits per byte on the standard library's packages, each run read as
  it was trained (streams: the state carried; packed: reset every row), overall and by
  position in the document."""
  report = _load('long_text')
  rows = _rows(report)
  present = [label for label in LONG_TEXT_NAMES if label in rows]
  first = rows[present[0]]
  buckets = [key.split('/', 1)[1] for key in first['documents']['reset']
             if key.startswith('bits_per_byte/')]
  lines = ['| long documents, bits per byte | params | seeds | overall | '
           + ' | '.join(f'{b} tokens' for b in buckets) + ' |',
           '|---|---|---|---|' + '---|' * len(buckets)]
  for label in present:
    row = rows[label]
    metrics = row['documents'][as_trained(row)]
    lines.append(f'| {LONG_TEXT_NAMES[label]} | {row["params"]:,} | {len(row["seeds"])} | '
                 f'{_num(metrics["bits_per_byte"], 3)} | '
                 + ' | '.join(_num(metrics.get(f'bits_per_byte/{b}'), 3) for b in buckets)
                 + ' |')
  return '\n'.join(lines + ['', _source(report, 'long_text')])


# The encoder_decoder grid's rows as the README names them: (task, architecture).
SEQ2SEQ_NAMES = {
    'copy_summary/encoder_decoder': ('copy task', 'encoder-decoder'),
    'copy_summary/prefix_lm': ('copy task', 'prefix LM'),
    'toy_translation/encoder_decoder': ('toy translation', 'encoder-decoder'),
    'toy_translation/prefix_lm': ('toy translation', 'prefix LM'),
}


def encoder_decoder_table() -> str:
  """The two seq2seq architectures at equal parameters and steps: greedy targets' exact
  match and ROUGE-L or BLEU (%), the targets' loss (teacher forced)."""
  report = _load('encoder_decoder')
  rows = _rows(report)
  lines = ['| seq2seq task | architecture | params | seeds | exact match % | '
           'ROUGE-L / BLEU % | target loss (nats/token) |', '|---|---|---|---|---|---|---|']
  for label, (task, arch) in SEQ2SEQ_NAMES.items():
    if label not in rows:
      continue
    row = rows[label]
    score = row['rougeL'] if row.get('rougeL') else row.get('bleu')
    lines.append(f'| {task} | {arch} | {row["params"]:,} | {len(row["seeds"])} | '
                 f'{_num(row["exact_match"], 1)} | {_num(score, 1)} | '
                 f'{_num(row["loss"], 3)} |')
  return '\n'.join(lines + ['', _source(report, 'encoder_decoder')])


def long_sources_table() -> str:
  """Sources of about 4 and 16 windows: each architecture with its memory on and off
  (off paid for in MLP units), the rows trained so far."""
  report = _load('long_sources')
  rows = _rows(report)
  lines = ['| source | architecture | memory | params | seeds | exact match % | ROUGE-L % | '
           'target loss (nats/token) |', '|---|---|---|---|---|---|---|---|']
  for length in ('4x', '16x'):
    for arch, name in (('encoder_decoder', 'encoder-decoder'), ('prefix_lm', 'prefix LM')):
      for memory in ('on', 'off'):
        row = rows.get(f'{length}/{arch}_memory_{memory}')
        if row is not None:
          lines.append(f'| {length} the window | {name} | {memory} | {row["params"]:,} | '
                       f'{len(row["seeds"])} | {_num(row["exact_match"], 1)} | '
                       f'{_num(row["rougeL"], 1)} | {_num(row["loss"], 3)} |')
  return '\n'.join(lines + ['', _source(report, 'long_sources')])


def speed_table() -> str:
  """Training step of each model in one bench run (experiments/bench.py)."""
  report = _load('bench_cpu')
  models = report['models']
  slots = models['memgpt_slots']['tokens_per_second']
  lines = ['| model (default config) | params | step ms | tokens/s | / plain GPT (rounds) | '
           '/ slot memory |', '|---|---|---|---|---|---|']
  for name, r in models.items():
    lines.append(f'| {name} | {r["params"]:,} | {r["step_ms"]:.0f} | '
                 f'{r["tokens_per_second"]:,.0f} | {ratio_with_spread(r, "{:.2f}")} | '
                 f'{r["tokens_per_second"] / slots:.2f} |')
  source = (f'[`bench_cpu`](experiments/results/bench_cpu.md): `{report["command"]}`, '
            f'commit {report["commit"]}, {report["device"]}; median of {report["rounds"]} '
            f'rounds of {report["steps"]} steps, the models taking turns')
  return '\n'.join(lines + ['', source])


# Model size (configs/gpt_scale.py): its bench run on an accelerator, smallest first.
ACCELERATOR_BENCHES = {'125M': 'bench_gpu_125m', '350M': 'bench_gpu_350m',
                       '1.3B': 'bench_gpu_1_3b_profile'}


def _number(value: float | None, spec: str = '{:.1f}') -> str:
  return '—' if value is None else spec.format(value)


def accelerator_speed_table() -> str:
  """Plain GPT and MemGPT at each model size, one bench run per size."""
  lines = ['| size | model | params | batch x tokens | step ms | tokens/s | / plain GPT | MFU '
           '| step memory GB | compile s | warm-up s |', '|---|' + '---|' * 10]
  sources = []
  for size, name in ACCELERATOR_BENCHES.items():
    report = _load(name)
    for model, r in report['models'].items():
      lines.append(f'| {size} | {model} | {r["params"]:,} | {report["batch_size"]} x '
                   f'{report["seq_len"]} | {r["step_ms"]:.0f} | {r["tokens_per_second"]:,.0f} | '
                   f'{_number(r["over_plain_gpt"], "{:.3f}")} | {100 * r["mfu"]:.1f}% | '
                   f'{_number(r["step_memory_bytes"] and r["step_memory_bytes"] / 2**30)} | '
                   f'{_number(r.get("compile_seconds"))} | {r["warmup_seconds"]:.1f} |')
    for model in report.get('did_not_fit', {}):
      lines.append(f'| {size} | {model} | | {report["batch_size"]} x {report["seq_len"]} | '
                   'did not fit in device memory | | | | | | |')
    sources.append(f'[`{name}`](experiments/results/{name}.md): `{report["command"]}`, '
                   f'commit {report["commit"]}, {report["device"]}, {report["dtype"]}; '
                   f'median of {report["rounds"]} rounds of {report["steps"]} steps')
  return '\n'.join(lines + ['', '\n\n'.join(sources)])


def accelerator_profile_table() -> str:
  """Where the accelerator step's time goes, by part of the model and by kind of op,
  for every size whose bench run profiled its models."""
  parts, kinds, sources = {}, {}, []
  for size, name in ACCELERATOR_BENCHES.items():
    report = _load(name)
    for model in report.get('profile_kinds', {}):
      parts[f'{size} {model}'] = report['profile'][model]
      kinds[f'{size} {model}'] = report['profile_kinds'][model]
    if report.get('profile_kinds'):
      sources.append(f'[`{name}`](experiments/results/{name}.md), commit {report["commit"]}')
  return '\n'.join([*step_profile.table(parts), '', *step_profile.kinds_table(kinds), '',
                    ', '.join(sources)])


def accelerator_decoding_table() -> str:
  """New tokens/s after a long context, cached against uncached, per batch size."""
  lines = ['| size | batch | context | cached tokens/s | uncached tokens/s | cached / uncached '
           '| / batch 1 (cached) |', '|---|---|---|---|---|---|---|']
  sources = []
  for size, name in ACCELERATOR_BENCHES.items():
    report = _load(name)
    decoding = report.get('decoding', [])
    for r in decoding:
      cached, uncached = r['cached_tokens_per_second'], r['uncached_tokens_per_second']
      lines.append(f'| {size} | {r["batch"]} | {r["context"]} | {cached:,.0f} | '
                   f'{uncached:,.1f} | {cached / uncached:.1f} | '
                   f'{cached / decoding[0]["cached_tokens_per_second"]:.1f} |')
    if decoding:
      sources.append(f'[`{name}`](experiments/results/{name}.md) (MemGPT), '
                     f'commit {report["commit"]}')
  return '\n'.join(lines + ['', ', '.join(sources)])


def profile_table() -> str:
  """Where the plain GPT's and MemGPT's step time goes, from the same bench run."""
  report = _load('bench_cpu')
  return '\n'.join(step_profile.table(report['profile']) + [
      '', f'[`bench_cpu`](experiments/results/bench_cpu.md), commit {report["commit"]}'])


def _mean_std(values: list) -> tuple[float, float]:
  mean = sum(values) / len(values)
  return mean, (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5


def _num(stat, digits: int) -> str:
  return '—' if stat is None else f'{stat[0]:,.{digits}f} ± {stat[1]:,.{digits}f}'


def pretrained_finetune_rows(report: dict) -> list[str]:
  """Bits per byte of whole validation documents in their first window and after it:
  the imported model as it came, and fine-tuned without memory, with it, and with
  memory and pointer (mean ± std over seeds; after the window also each seed's
  difference from the same seed without memory)."""
  names = {'before_finetuning': 'imported, not fine-tuned',
           'memory_off': 'fine-tuned without memory', 'memory_on': 'fine-tuned with memory',
           'memory_pointer': 'fine-tuned with memory and pointer'}
  first = report['runs'][0]['validation']
  window, after = (key for key in first if key.startswith('bits_per_byte/'))
  without = {r['seed']: r['validation'][after] for r in report['runs']
             if r['arm'] == 'memory_off'}
  lines = [f'| Llama-family model, bits per byte | params | seeds | whole documents | '
           f'first window ({window.split("/")[1]} tokens) | after it ({after.split("/")[1]}) '
           '| after it, minus without memory (per seed) |', '|---|---|---|---|---|---|---|']
  for arm, name in names.items():
    runs = [r for r in report['runs'] if r['arm'] == arm]
    if not runs:
      continue
    def cell(key):
      values = [r['validation'][key] for r in runs]
      return f'{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}'
    paired = ', '.join(f'{r["validation"][after] - without[r["seed"]]:+.4f}' for r in runs
                       if arm not in ('memory_off', 'before_finetuning') and r['seed'] in without)
    lines.append(f'| {name} | {runs[0]["params"]:,} | {len(runs)} | {cell("bits_per_byte")} | '
                 f'{cell(window)} | {cell(after)} | {paired or "-"} |')
  return lines


def pretrained_finetune_table() -> str:
  """The fine-tuned Llama-family model with and without memory
  (experiments/pretrained_finetune.py)."""
  report = _load('pretrained_finetune')
  source = (f'[`pretrained_finetune`](experiments/results/pretrained_finetune.md): '
            f'`{report["command"]}`, commit {report["commit"]}. {report["what"]}')
  return '\n'.join(pretrained_finetune_rows(report) + ['', source])


def chat_transcript_lines(report: dict, shown: int) -> list[str]:
  """The conversation as the user saw it: its first and last `shown` // 2 turns (the
  small talk between them counted), and how far each fact was asked from where it was told."""
  chat, turns = report['template'], report['turns']
  head, tail = shown // 2, shown - shown // 2
  def exchange(turn):
    return [f'{chat["user"]}{turn["user"]}', f'{chat["assistant"]}{turn["assistant"]}']
  lines = ['```']
  for turn in turns[:head]:
    lines += exchange(turn)
  if len(turns) > shown:
    lines.append(f'... {len(turns) - shown} more turns of small talk ...')
  for turn in turns[max(head, len(turns) - tail):]:
    lines += exchange(turn)
  lines.append('```')
  window = report['window_tokens']
  lines += ['', '| fact | told at turn | asked at turn | tokens between | windows between | '
            'reply | right |', '|---|---|---|---|---|---|---|']
  lines += [f'| {told(f["relation"], f["name"])} | {f["told_at_turn"]} | '
            f'{f["asked_at_turn"]} | {f["tokens_between"]:,} | '
            f'{f["tokens_between"] / window:.1f} | {f["reply"].strip()} | '
            f'{"yes" if f["right"] else "no"} |' for f in report['facts']]
  return lines


def chat_transcript_table() -> str:
  """The README's conversation with the dialogue model (experiments/chat_transcript.py)."""
  report = _load('chat_transcript')
  source = (f'[`chat_transcript`](experiments/results/chat_transcript.md): '
            f'`{report["command"]}`, commit {report["commit"]}, model `{report["workdir"]}`')
  return '\n'.join(chat_transcript_lines(report, shown=6) + ['', source])


def kernel_time_rows(report: dict) -> list[str]:
  """Per shape and copy: system time's share of CPU time, page faults, peak memory,
  tokens/s, and (against a baseline) this code's tokens/s over the baseline's run beside
  it (median of the pairs, lowest-highest)."""
  compared = bool(report['baseline_commit'])
  lines = ['| shape | code | system / CPU time | minor page faults | peak MiB | wall s | '
           'tokens/s |' + (' / baseline (pairs) |' if compared else ''),
           '|---|---|---|---|---|---|---|' + ('---|' if compared else '')]
  for shape, sides in report['shapes'].items():
    ratio = {}
    if compared:
      pairs = sorted(this['tokens_per_second'] / base['tokens_per_second'] for base, this
                     in zip(sides['baseline']['runs'], sides['this']['runs']))
      ratio = {'baseline': ' 1.00 |', 'this': f' {pairs[len(pairs) // 2]:.2f} '
               f'({pairs[0]:.2f}-{pairs[-1]:.2f}) |'}
    for side in sides:
      s = sides[side]['summary']
      share, tok = s['sys_share'], s['tokens_per_second']
      speed = ('—' if math.isnan(tok['median']) else
               f'{tok["median"]:,.0f} ({tok["min"]:,.0f}-{tok["max"]:,.0f})')
      lines.append(
          f'| {shape} | {side} | {100 * share["median"]:.1f}% ({100 * share["min"]:.1f}-'
          f'{100 * share["max"]:.1f}) | {s["minor_faults"]["median"]:,.0f} | '
          f'{s["peak_rss_mib"]["median"]:,.0f} | {s["wall_s"]["median"]:.1f} | '
          f'{speed} |{ratio.get(side, "")}')
  return lines


def kernel_time_table(name: str = 'kernel_time') -> str:
  """System time's share of CPU time and tokens/s of whole memgpt-train processes, this
  code against the code before it, taking turns (experiments/kernel_time.py)."""
  report = _load(name)
  against = (f' against {report["baseline_commit"]}; {report["rounds"]} runs of each, '
             'interleaved' if report['baseline_commit'] else f'; {report["rounds"]} runs')
  source = (f'[`{name}`](experiments/results/{name}.md): `{report["command"]}`, '
            f'commit {report["commit"]}{against}; median (min-max)')
  return '\n'.join(kernel_time_rows(report) + ['', source])


TABLES = {'recall': recall_table, 'capacity': capacity_table, 'passkey': passkey_table,
          'text': text_table, 'long_text': long_text_table,
          'encoder_decoder': encoder_decoder_table, 'long_sources': long_sources_table,
          'dialogue': dialogue_table, 'delta_knobs': delta_knobs_table,
          'facts': facts_table, 'facts_streams': facts_streams_table,
          'chat_transcript': chat_transcript_table,
          'pretrained_finetune': pretrained_finetune_table,
          'speed': speed_table,
          'profile': profile_table,
          'kernel_time': kernel_time_table,
          'kernel_time_frame_stack': functools.partial(kernel_time_table,
                                                       'kernel_time_frame_stack'),
          'kernel_time_two_arenas_frame_stack': functools.partial(
              kernel_time_table, 'kernel_time_two_arenas_frame_stack'),
          'kernel_time_tiny': functools.partial(kernel_time_table, 'kernel_time_tiny'),
          'accelerator_speed': accelerator_speed_table,
          'accelerator_profile': accelerator_profile_table,
          'accelerator_decoding': accelerator_decoding_table}

# Where each table is shown: a page of the repository and the tables in it.
PAGES = {'README.md': ('recall', 'long_text', 'chat_transcript', 'encoder_decoder',
                       'pretrained_finetune'),
         'docs/experiments.md': ('text', 'capacity', 'passkey', 'delta_knobs', 'dialogue',
                                 'facts', 'facts_streams', 'long_sources'),
         'docs/performance.md': ('speed', 'profile', 'kernel_time', 'kernel_time_frame_stack',
                                 'kernel_time_two_arenas_frame_stack', 'kernel_time_tiny',
                                 'accelerator_speed',
                                 'accelerator_profile', 'accelerator_decoding')}


def render(page: str, text: str) -> str:
  """`text` (the page at path `page`) with every table block replaced by its freshly made
  table, its links to results files relative to the page."""
  up = '../' * page.count('/')
  for name in PAGES[page]:
    pattern = re.compile(rf'(<!-- table:{name} -->\n).*?(\n<!-- /table:{name} -->)', re.S)
    if not pattern.search(text):
      raise SystemExit(f'report.py: {page} has no <!-- table:{name} --> block')
    table = TABLES[name]().replace('](experiments/', f']({up}experiments/')
    text = pattern.sub(lambda m: m.group(1) + table + m.group(2), text)
  return text


def main(argv: list[str]) -> int:
  stale = []
  for page in PAGES:
    path = ROOT / page
    current = path.read_text()
    fresh = render(page, current)
    if fresh == current:
      continue
    stale.append(page)
    if '--check' not in argv:
      path.write_text(fresh)
  if stale and '--check' in argv:
    print(f'report.py: the tables of {", ".join(stale)} differ from experiments/results/: '
          'run python experiments/report.py', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
