"""Seq2seq with copying, fine-tuning and a mixture, on the built-in copy task.

  python experiments/seq2seq.py [--steps=600] [--finetune_steps=300] [--out=experiments/results]

Trains configs/copy_summary.py (one seed each):
  pointer_on / pointer_off      the same model with and without the pointer
  pretrain -> finetune          the model as a causal LM on the stdlib corpus, then
                                fine-tuned on the task (--config.init_from)
  scratch                       the task from scratch, as many steps as the fine-tuning
  mixture                       the task and the stdlib corpus mixed 1:1, each evaluated
and writes <out>/seq2seq.md and <out>/seq2seq.json: exact match and ROUGE of greedy
summaries of held-out reports, loss and bits per byte of the targets.
"""

import json
import pathlib
import shutil
import time

from absl import app
from absl import flags
import ml_collections

from memgpt_jax import host_memory
from memgpt_jax.config_lib import load_config
from memgpt_jax.training import trainer
from memgpt_jax.provenance import write_results

ROOT = pathlib.Path(__file__).resolve().parents[1]
_STEPS = flags.DEFINE_integer('steps', 600, 'Training steps of the pointer on/off runs.')
_FINETUNE_STEPS = flags.DEFINE_integer('finetune_steps', 300,
                                       'Steps of pretraining, fine-tuning, scratch, mixture.')
_OUT = flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
_WORKDIR = flags.DEFINE_string('workdir', str(ROOT / 'runs' / 'seq2seq'), 'Training runs.')

_METRICS = ('exact_match', 'rouge1', 'rouge2', 'rougeL', 'loss', 'bits_per_byte', 'accuracy',
            'pointer_gate', 'copy_share')


def _config(steps: int) -> ml_collections.ConfigDict:
  config = load_config(ROOT / 'configs' / 'copy_summary.py')
  config.train.num_steps = steps
  config.train.eval_every = steps
  config.train.checkpoint_every = steps
  return config


def _pointer_off(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  config.model.pointer.enabled = False
  return config


def _finetuned(config: ml_collections.ConfigDict, pretrained: str) -> ml_collections.ConfigDict:
  config.init_from = pretrained
  return config


def _as_lm(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The same model as a causal LM on the stdlib corpus."""
  config.data.source = 'pystdlib'
  config.data.inputs_key = config.data.targets_key = config.data.task_metrics = ''
  return config


def _mixture(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  task = {k: config.data[k] for k in ('source', 'inputs_key', 'targets_key', 'task_metrics')}
  config.data.mixture = ml_collections.ConfigDict({
      'copy': dict(task, rate=0.5),
      'code': {'source': 'pystdlib', 'inputs_key': '', 'targets_key': '', 'task_metrics': '',
               'rate': 0.5}})
  return config


def _train(name: str, config: ml_collections.ConfigDict, results: dict) -> dict:
  workdir = pathlib.Path(_WORKDIR.value) / name
  shutil.rmtree(workdir, ignore_errors=True)
  start = time.perf_counter()
  metrics = trainer.train_and_evaluate(config, workdir)
  results[name] = {'steps': config.train.num_steps, 'init_from': config.init_from,
                   'seconds': round(time.perf_counter() - start, 1), **metrics}
  print(name, json.dumps(results[name]), flush=True)
  return results[name]


def _rows(results: dict) -> list[tuple[str, int, dict]]:
  """One row per run, and per task of a mixture ('task/metric' keys)."""
  rows = []
  for name, result in results.items():
    tasks = sorted({k.split('/')[0] for k in result if '/' in k})
    for task in tasks or ['']:
      prefix = f'{task}/' if task else ''
      label = f'{name} ({task})' if task else name
      rows.append((label, result['steps'],
                   {m: result[prefix + m] for m in _METRICS if prefix + m in result}))
  return rows


def table(results: dict) -> str:
  lines = ['| run | steps | ' + ' | '.join(_METRICS) + ' |',
           '|---|---|' + '---|' * len(_METRICS)]
  for label, steps, metrics in _rows(results):
    cells = [f'{metrics[m]:.3g}' if m in metrics else '' for m in _METRICS]
    lines.append(f'| {label} | {steps} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def write(results: dict, out: pathlib.Path, steps: int, short: int):
  write_results(out, 'seq2seq', results, (
      '# Seq2seq copy task (configs/copy_summary.py)\n\n'
      f'Written by `python experiments/seq2seq.py --steps={steps} '
      f'--finetune_steps={short}`; one seed each, on a 2-core CPU. exact_match and ROUGE '
      '(percent) score greedy summaries of the first train.generate_examples validation '
      'reports; loss, bits per byte, pointer gate and copy share are over the target '
      'tokens (teacher forced). pretrain_lm is the same model as a causal LM on the '
      'stdlib corpus; finetune starts from it (--config.init_from), scratch does not; '
      'mixture trains the task and the stdlib corpus 1:1 and evaluates each.\n\n'
      + table(results) + '\n'))


def main(argv):
  del argv
  steps, short = _STEPS.value, _FINETUNE_STEPS.value
  results = {}
  _train('pointer_on', _config(steps), results)
  _train('pointer_off', _pointer_off(_config(steps)), results)
  _train('pretrain_lm', _as_lm(_config(short)), results)
  pretrained = str(pathlib.Path(_WORKDIR.value) / 'pretrain_lm')
  _train('finetune', _finetuned(_config(short), pretrained), results)
  _train('scratch', _config(short), results)
  _train('mixture', _mixture(_config(short)), results)
  write(results, pathlib.Path(_OUT.value), steps, short)
  print(table(results))


if __name__ == '__main__':
  host_memory.run(app.run, main)
