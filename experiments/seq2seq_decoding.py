"""Decoding speed of the two seq2seq architectures at equal parameters, in one run.

  python experiments/seq2seq_decoding.py [--config=configs/copy_summary.py]
      [--source_windows=1,4,16] [--batches=1,32] [--new_tokens=64] [--rounds=3]
      [--out=experiments/results] [--name=seq2seq_decoding_cpu]

For each source length (in windows of model.segment_len) and batch: the encoder-decoder
(cross-attention to all of the source) and the prefix LM of its parameters (the MLP
widened; its row holds the source and the target) generate --new_tokens greedy target
tokens for random sources with memgpt_jax.decode.generate, the program behind
memgpt-sample --inputs and the task metrics: the prefix LM feeds the source through its
decoder, the encoder-decoder encodes it once. The time counts everything from the
source to the last new token; each figure is the median of --rounds runs after one that
compiles, the two architectures taking turns.
"""

import pathlib
import statistics
import time

from absl import app
from absl import flags
import flax.linen as nn
import jax
from ml_collections import config_flags
import numpy as np

from memgpt_jax import config_lib
from memgpt_jax import host_memory
from memgpt_jax.data.tokenizer import declared_vocab_size, make_tokenizer
from memgpt_jax.decode import Decoder, generate
from memgpt_jax.model.transformer import MemGPT, init_tokens
from memgpt_jax.provenance import devices, provenance, write_results
from param_matching import count_params, with_params

ROOT = pathlib.Path(__file__).resolve().parents[1]
_CONFIG = config_flags.DEFINE_config_file('config', str(ROOT / 'configs' / 'copy_summary.py'),
                                          'The seq2seq config both architectures start from.')
_SOURCE_WINDOWS = flags.DEFINE_list('source_windows', ['1', '4', '16'],
                                    'Source lengths, in windows of model.segment_len.')
_BATCHES = flags.DEFINE_list('batches', ['1', '32'], 'Sources decoded side by side.')
_NEW_TOKENS = flags.DEFINE_integer('new_tokens', 64, 'Target tokens generated per source.')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'Timed runs per architecture and shape.')
_OUT = flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
_NAME = flags.DEFINE_string('name', None, 'Results file name (default '
                            'seq2seq_decoding_<platform>).')

ARCHS = ('encoder_decoder', 'prefix_lm')


def arch_configs(config, windows: int) -> dict:
  """{architecture: config} for sources of `windows` windows: the encoder-decoder reads
  them in its encoder; the prefix LM, at its parameters, in a row one window longer."""
  encoder_decoder = config.copy_and_resolve_references()
  encoder_decoder.model.arch = 'encoder_decoder'
  encoder_decoder.model.encoder.update(num_layers=encoder_decoder.model.num_layers,
                                       num_segments=windows, cross_attention='all')
  prefix_lm = encoder_decoder.copy_and_resolve_references()
  prefix_lm.model.arch = 'decoder'
  prefix_lm.model.num_segments = windows + 1
  return {'encoder_decoder': encoder_decoder,
          'prefix_lm': with_params(prefix_lm, count_params(encoder_decoder))}


def decoder_of(config) -> Decoder:
  cfg = config_lib.validate(config, declared_vocab_size(config.data))
  model = MemGPT(cfg)
  return Decoder(model, nn.unbox(jax.jit(model.init)(jax.random.key(0), init_tokens(cfg))))


def decode_seconds(decoder: Decoder, sources: np.ndarray) -> float:
  """Seconds from the sources [B, S] (each ended by eos) to the last new token."""
  start = time.perf_counter()
  for _ in generate(decoder, sources, _NEW_TOKENS.value, jax.random.key(0),
                    temperature=0.0, prefix=True, chunk_size=_NEW_TOKENS.value):
    pass
  return time.perf_counter() - start


def markdown(results: dict) -> str:
  lines = ['# Seq2seq decoding speed: encoder-decoder against prefix LM', '',
           f'`{results["command"]}` at commit {results["commit"]} on '
           f'{results["device"]}: greedy '
           f'targets of {results["new_tokens"]} tokens, timed from the source to the last '
           'token (median of the rounds; the source encoded once, or fed through the prefix '
           "LM's decoder). New target tokens per second; params of each model in the rows.",
           '', '| source (windows of T) | batch | encoder-decoder tokens/s | prefix LM '
           'tokens/s | encoder-decoder / prefix LM | params (enc-dec, prefix LM) |',
           '|---|---|---|---|---|---|']
  for row in results['rows']:
    speed = {arch: row[arch]['tokens_per_second'] for arch in ARCHS}
    lines.append(f'| {row["windows"]} ({row["source_tokens"]} tokens) | {row["batch"]} | '
                 f'{speed["encoder_decoder"]:,.0f} | {speed["prefix_lm"]:,.0f} | '
                 f'{speed["encoder_decoder"] / speed["prefix_lm"]:.2f} | '
                 f'{row["encoder_decoder"]["params"]:,}, {row["prefix_lm"]["params"]:,} |')
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  config = _CONFIG.value
  segment_len = config.model.segment_len
  results = {'name': _NAME.value or f'seq2seq_decoding_{jax.devices()[0].platform}',
             **provenance(), 'device': devices(), 'new_tokens': _NEW_TOKENS.value,
             'rounds': _ROUNDS.value, 'rows': []}
  rng = np.random.default_rng(0)
  eos = make_tokenizer(config.data).eos_id
  for windows in map(int, _SOURCE_WINDOWS.value):
    configs = arch_configs(config, windows)
    decoders = {arch: decoder_of(arch_config) for arch, arch_config in configs.items()}
    for batch in map(int, _BATCHES.value):
      sources = rng.integers(0, 256, (batch, windows * segment_len), dtype=np.int32)
      sources[:, -1] = eos  # each source ends as in training
      for decoder in decoders.values():
        decode_seconds(decoder, sources)  # compiles
      seconds = {arch: [] for arch in ARCHS}
      for _ in range(_ROUNDS.value):
        for arch in ARCHS:
          seconds[arch].append(decode_seconds(decoders[arch], sources))
      row = {'windows': windows, 'source_tokens': windows * segment_len, 'batch': batch}
      for arch in ARCHS:
        median = statistics.median(seconds[arch])
        row[arch] = {'params': count_params(configs[arch]), 'seconds': seconds[arch],
                     'tokens_per_second': batch * _NEW_TOKENS.value / median}
      results['rows'].append(row)
      print(row, flush=True)
      write_results(_OUT.value, results['name'], results, markdown(results))


if __name__ == '__main__':
  host_memory.run(app.run, main)
