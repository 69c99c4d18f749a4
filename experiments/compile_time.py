"""Seconds to build the train step with the layers unrolled and scanned
(model.scan_layers), at several depths: what the scan over layers saves.

  python experiments/compile_time.py [--config=configs/gpt_350m.py:memgpt]
                                     [--depths=4,8,16,24] [--out=experiments/results]
                                     [--name=compile_time_<platform>]

The step is traced, lowered and compiled on abstract inputs (no parameter is
allocated, nothing runs), for the model of --config at each depth with its memory
pattern (e.g. every 4th layer) repeated down the depth. Writes <out>/<name>.json, .md.
"""

import pathlib
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from memgpt_jax import config_lib
from memgpt_jax import host_memory
from memgpt_jax.data.tokenizer import declared_vocab_size
from memgpt_jax.model.transformer import MemGPT
from memgpt_jax.provenance import devices, provenance, write_results
from memgpt_jax.training.optimizer import make_optimizer
from memgpt_jax.training.partitioner import JitPartitioner

ROOT = pathlib.Path(__file__).resolve().parents[1]
_CONFIG = config_flags.DEFINE_config_file(
    'config', str(ROOT / 'configs' / 'gpt_350m.py') + ':memgpt', 'MemGPT config.')
_DEPTHS = flags.DEFINE_list('depths', ['4', '8', '16', '24'], 'num_layers to build.')
_OUT = flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
_NAME = flags.DEFINE_string('name', None, 'Results file name (default compile_time_<platform>).')


def at_depth(config, depth: int, scan_layers: bool):
  """`config` with `depth` layers, its memory pattern repeated: the layers that have
  memory are those whose place in the pattern's period has it."""
  cfg = config_lib.validate(config, declared_vocab_size(config.data))
  config = config.copy_and_resolve_references()
  config.model.num_layers, config.model.scan_layers = depth, scan_layers
  if cfg.memory_enabled:
    config.model.memory.layers = ','.join(
        str(layer) for layer in range(depth) if cfg.has_memory(layer % cfg.layer_period))
  return config


def offsets(cfg) -> str:
  """'3': where the memory layers sit in each period of the memory pattern."""
  return ','.join(str(i) for i in range(cfg.layer_period) if cfg.has_memory(i))


def build_seconds(config) -> dict[str, float]:
  cfg = config_lib.validate(config, declared_vocab_size(config.data))
  partitioner = JitPartitioner(config, MemGPT(cfg), make_optimizer(config.train))
  seconds, start = {}, time.perf_counter()
  traced = partitioner.trace_step(config.train.batch_size, cfg.seq_len)
  seconds['trace'] = time.perf_counter() - start
  lowered = traced.lower()
  seconds['lower'] = time.perf_counter() - start - seconds['trace']
  lowered.compile()
  seconds['compile'] = time.perf_counter() - start - seconds['trace'] - seconds['lower']
  seconds['total'] = time.perf_counter() - start
  return seconds


def markdown(results: dict) -> str:
  lines = [f'# Building the train step: {results["name"]}', '',
           f'`{results["command"]}` at commit {results["commit"]} on {results["device"]}: '
           f'{results["model"]}, batch {results["batch_size"]} x {results["seq_len"]} tokens, '
           'seconds to trace, lower and compile the train step (nothing runs).', '',
           '| layers | unrolled s | scanned s | unrolled: trace / lower / compile | '
           'scanned: trace / lower / compile |', '|---|---|---|---|---|']
  for depth, by_layout in results['depths'].items():
    parts = lambda s: f'{s["trace"]:.1f} / {s["lower"]:.1f} / {s["compile"]:.1f}'
    unrolled, scanned = by_layout['unrolled'], by_layout['scanned']
    lines.append(f'| {depth} | {unrolled["total"]:.1f} | {scanned["total"]:.1f} | '
                 f'{parts(unrolled)} | {parts(scanned)} |')
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  config = _CONFIG.value
  name = _NAME.value or f'compile_time_{jax.devices()[0].platform}'
  cfg = config_lib.validate(config, declared_vocab_size(config.data))
  results = {'name': name, **provenance(), 'device': devices(),
             'model': f'd_model {cfg.d_model}, ' + (
                 f'memory in layers {offsets(cfg)} of every {cfg.layer_period}'
                 if cfg.memory_enabled else 'no memory'),
             'batch_size': config.train.batch_size, 'seq_len': cfg.seq_len, 'depths': {}}
  for depth in map(int, _DEPTHS.value):
    results['depths'][depth] = {
        layout: build_seconds(at_depth(config, depth, layout == 'scanned'))
        for layout in ('unrolled', 'scanned')}
    print(depth, results['depths'][depth], flush=True)
  table = markdown(results)
  print(table)
  write_results(_OUT.value, name, results, table)


if __name__ == '__main__':
  host_memory.run(app.run, main)
