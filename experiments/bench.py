"""Training speed of MemGPT against the plain GPT of the same width, depth and batch.

  python experiments/bench.py [--config=configs/default.py] [--rounds=7] [--steps=3]
                              [--config.train.batch_size=16 ...]
                              [--models=plain_gpt,memgpt_slots,memgpt_delta_scan,...]
                              [--decode_context=2048] [--decode_batches=1,32]
                              [--profile=plain_gpt,memgpt_delta_chunked]
                              [--out=experiments/results] [--name=bench_cpu]

Every model is timed in ONE run on the same devices, with the real train step (jit
over the mesh of config.mesh, or pmap: memgpt_jax.parallel) on random tokens, so the
input pipeline is not in the figure: the plain GPT, MemGPT with the slot memory, and
MemGPT with the delta memory written by each of its forms (scan, chunked); or the
models --models names, among them MemGPT or the plain GPT with one fast path switched
(segments in a loop, the other attention, layers not scanned, another remat policy, the
batch in one piece instead of micro-batches: VARIANTS). The models take turns:
--rounds rounds of --steps steps each, and a model's step time is its median round, so
a machine that speeds up or slows down during the run moves every model alike. Prints
and writes (<out>/<name>.json, .md) params, step time, tokens/s, the ratio to the plain
GPT, the step's device memory (XLA's count), the seconds to build it, and on GPU/TPU
the MFU from the model FLOP count of memgpt_jax/flops.py (memory and pointer work
included) and its per-device peak table; a model whose step does not fit the device's
memory is named as such, and the others are timed. For the --profile models, where a
step's time goes: a profile of --steps steps broken down by part of the model (attention,
MLP, memory read and write, pointer, ...; experiments/step_profile.py). Then
decoding: new tokens/s of the model of --config after --decode_context tokens, cached
(the compiled loop of memgpt_jax/decode.py) and uncached, at each of --decode_batches.
"""

import pathlib
import time

from absl import app
from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np

from memgpt_jax import config_lib
from memgpt_jax import flops
from memgpt_jax import host_memory
from memgpt_jax.data.tokenizer import declared_vocab_size
from memgpt_jax.decode import Decoder
from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.transformer import MemGPT, init_tokens
from memgpt_jax.training.partitioner import make_partitioner
from memgpt_jax.parallel.sharding import bytes_per_device
from memgpt_jax.provenance import devices, provenance, write_results
from memgpt_jax.training.optimizer import make_optimizer
from report import ratio_with_spread
import step_profile

ROOT = pathlib.Path(__file__).resolve().parents[1]
_CONFIG = config_flags.DEFINE_config_file('config', str(ROOT / 'configs' / 'default.py'),
                                          'MemGPT config.')
_ROUNDS = flags.DEFINE_integer('rounds', 7, 'Timed rounds; each model runs once per round.')
_STEPS = flags.DEFINE_integer('steps', 3, 'Steps per model and round.')
_WARMUP = flags.DEFINE_integer('warmup', 2, 'Untimed steps before the timed rounds.')
_OUT = flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
_NAME = flags.DEFINE_string('name', None, 'Results file name (default bench_<platform>).')
_DECODE_CONTEXT = flags.DEFINE_integer('decode_context', 2048,
                                       'Tokens fed before decoding is timed.')
_DECODE_TOKENS = flags.DEFINE_integer('decode_tokens', 64, 'New tokens timed per batch.')
_DECODE_BATCHES = flags.DEFINE_list('decode_batches', ['1', '32'], 'Decoding batch sizes.')
_MODELS = flags.DEFINE_list(
    'models', ['plain_gpt', 'memgpt_slots', 'memgpt_delta_scan', 'memgpt_delta_chunked'],
    'Models timed: plain_gpt and any of VARIANTS.')
_PROFILE = flags.DEFINE_list('profile', ['plain_gpt', 'memgpt_delta_chunked'],
                             'Models whose step time is broken down by part of the model.')

# MemGPT as configured, once per memory kind and write form; then MemGPT or the plain
# GPT with one fast-path switch turned the other way (--models picks them: not timed by
# default). Each is the model it starts from and the settings it changes.
VARIANTS = {
    'memgpt_slots': ('memgpt', {'model.memory.kind': 'slots'}),
    'memgpt_delta_scan': ('memgpt', {'model.memory.kind': 'delta',
                                     'model.memory.delta.write_form': 'scan'}),
    'memgpt_delta_chunked': ('memgpt', {'model.memory.kind': 'delta',
                                        'model.memory.delta.write_form': 'chunked'}),
    'memgpt_delta_chunked_wy': ('memgpt', {'model.memory.kind': 'delta',
                                           'model.memory.delta.write_form': 'chunked_wy'}),
    'memgpt_delta_chunk_128': ('memgpt', {'model.memory.delta.chunk_size': 128}),
    'memgpt_segment_loop': ('memgpt', {'model.segment_unroll': 1}),
    'memgpt_fused_attention': ('memgpt', {'model.attention': 'fused'}),
    'memgpt_einsum_attention': ('memgpt', {'model.attention': 'einsum'}),
    'memgpt_layers_unscanned': ('memgpt', {'model.scan_layers': False}),
    'plain_gpt_layers_unscanned': ('plain_gpt', {'model.scan_layers': False}),
    'memgpt_remat_none': ('memgpt', {'model.remat': 'none'}),
    'memgpt_remat_dots': ('memgpt', {'model.remat': 'dots'}),
    'plain_gpt_remat_none': ('plain_gpt', {'model.remat': 'none'}),
    'plain_gpt_remat_dots': ('plain_gpt', {'model.remat': 'dots'}),
    'memgpt_one_batch': ('memgpt', {'train.grad_accum_steps': 1}),
    # The model's state carried from step to step in the train state (data.layout).
    'memgpt_streams': ('memgpt', {'data.layout': 'streams'}),
    # An encoder-decoder (a seq2seq --config; its encoder as model.encoder.* says).
    'memgpt_encoder_decoder': ('memgpt', {'model.arch': 'encoder_decoder'}),
    'plain_gpt_one_batch': ('plain_gpt', {'train.grad_accum_steps': 1}),
}


class Timed:
  """One model's train step, compiled and warmed up, timed a round at a time."""

  def __init__(self, config):
    self.cfg = config_lib.validate(config, declared_vocab_size(config.data),
                                   jax.process_count())
    self.config = config
    self.partitioner = make_partitioner(config, MemGPT(self.cfg), make_optimizer(config.train))
    self.state = self.partitioner.from_global(self.partitioner.init_state())
    shape = (config.train.batch_size // jax.process_count(), self.cfg.seq_len)  # this host's
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 256, shape, dtype=np.int32)
    self.batch = {'inputs': tokens, 'targets': tokens, 'mask': np.ones(shape, np.float32)}
    # An encoder-decoder's sources: whole segments of them.
    self.source_len = (self.cfg.encoder_segments * self.cfg.segment_len
                       if self.cfg.arch == 'encoder_decoder' else 0)
    if self.source_len:
      self.batch['encoder_inputs'] = rng.integers(0, 256, (shape[0], self.source_len),
                                                  dtype=np.int32)
    # Built ahead of time where the step traces on abstract inputs (jit, not pmap): the
    # warm-up's first call then finds it compiled, and its program stays at hand.
    self.program, self.compile_seconds = None, None
    if config.parallelism == 'jit':
      start = time.perf_counter()
      self.program = self.compiled()
      self.compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    self.run(_WARMUP.value)
    self.warmup_seconds = time.perf_counter() - start  # compilation included under pmap
    self.rounds = []

  def run(self, steps: int):
    for _ in range(steps):
      self.state, metrics = self.partitioner.train_step(self.state, self.batch)
    jax.block_until_ready((self.state, metrics))

  def time_round(self):
    start = time.perf_counter()
    self.run(_STEPS.value)
    self.rounds.append((time.perf_counter() - start) / _STEPS.value)

  def compiled(self, compiler_options: dict | None = None) -> jax.stages.Compiled:
    """The step being timed, built ahead of time, with XLA options of the caller's."""
    return self.partitioner.trace_step(self.config.train.batch_size, self.cfg.seq_len,
                                       self.source_len).lower().compile(compiler_options)

  def step_memory_bytes(self) -> int | None:
    """Device memory the step takes at its peak, by XLA's own count: its inputs
    (parameters, optimizer state, batch), outputs not written in place of an input, and
    temporaries (activations kept for the backward pass included). None under pmap."""
    if self.program is None:
      return None
    stats = self.program.memory_analysis()
    if stats is None:
      return None
    return (stats.argument_size_in_bytes + stats.output_size_in_bytes
            - stats.alias_size_in_bytes + stats.temp_size_in_bytes)

  def profile(self) -> step_profile.StepProfile:
    """Where the step's time goes (experiments/step_profile.py), from the step built with
    the profile's XLA options (a second program on a GPU)."""
    options = step_profile.COMPILER_OPTIONS.get(jax.default_backend())
    compiled = self.compiled(options) if options else self.program

    def run_step():
      self.state, metrics = self.partitioner.run_compiled(compiled, self.state, self.batch)
      jax.block_until_ready((self.state, metrics))

    run_step()  # its first run, outside the profile
    return step_profile.profile(run_step, compiled.as_text(), _STEPS.value)

  def summary(self) -> dict:
    seconds = float(np.median(self.rounds))
    tokens_per_second = self.config.train.batch_size * self.cfg.seq_len / seconds
    achieved = flops.train_flops_per_token(self.cfg) * tokens_per_second
    peak = flops.peak_flops(jax.devices()[0].device_kind, self.cfg.dtype)
    return {
        'params': sum(x.size for x in jax.tree.leaves(self.partitioner.abstract_state.params)),
        # Parameters and optimizer state on the fullest device.
        'state_bytes_per_device': max(
            bytes_per_device(self.partitioner.to_global(self.state)).values()),
        'step_memory_bytes': self.step_memory_bytes(),
        'step_ms': 1e3 * seconds,
        'step_ms_rounds': [1e3 * s for s in self.rounds],
        'compile_seconds': self.compile_seconds,
        'warmup_seconds': self.warmup_seconds,
        'tokens_per_second': tokens_per_second,
        'model_tflops_per_second': achieved / 1e12,
        'mfu': achieved / (peak * len(jax.devices())) if peak else None,
    }


def decoding_speed(cfg: ModelConfig, batch: int) -> dict:
  """New tokens/s after decode_context tokens of context, for the model as configured:
  cached (decode.py: the KV window, memory and pointer cache carried, new tokens from
  the compiled loop) against uncached (one full forward pass over the context per new
  token, what decoding costs without a cache)."""
  model = MemGPT(cfg)
  context = _DECODE_CONTEXT.value - _DECODE_CONTEXT.value % cfg.segment_len
  prompt = np.random.default_rng(1).integers(0, 256, (batch, context), dtype=np.int32)
  params = nn.unbox(jax.jit(model.init)(jax.random.key(0), init_tokens(cfg)))
  decoder = Decoder(model, params)
  log_probs, state = decoder.feed(decoder.start(batch), jnp.asarray(prompt))
  sample = lambda: decoder.sample_and_feed(
      state, log_probs[:, -1], jnp.zeros(batch, bool), jax.random.key(0), 0,
      _DECODE_TOKENS.value, 1.0, 0, 1.0, None)[0]
  forward = jax.jit(lambda tokens: model.apply(params, tokens).vocab_logits[:, -1])
  seconds = {}
  for name, run in (('cached', sample), ('uncached', lambda: forward(prompt))):
    jax.block_until_ready(run())  # compiles
    start = time.perf_counter()
    jax.block_until_ready(run())
    seconds[name] = time.perf_counter() - start
  return {'batch': batch, 'context': context,
          'cached_tokens_per_second': batch * _DECODE_TOKENS.value / seconds['cached'],
          'uncached_tokens_per_second': batch / seconds['uncached']}


def gigabytes(count: int | None) -> str:
  return '-' if count is None else f'{count / 2**30:.2f}'


def seconds(value: float | None) -> str:
  return '-' if value is None else f'{value:.1f}'


def micro_batches(count: int) -> str:
  return f' in {count} micro-batches' if count > 1 else ''


def markdown(results: dict) -> str:
  lines = [f'# Training speed: {results["name"]}', '',
           f'`{results["command"]}` at commit {results["commit"]} on {results["device"]} '
           f'(jax {results["jax"]}), '
           f'{results["dtype"]}, batch {results["batch_size"]} x {results["seq_len"]} tokens'
           f'{micro_batches(results.get("grad_accum_steps", 1))}; '
           f'each model\'s median of {results["rounds"]} rounds of {results["steps"]} steps, '
           'the models taking turns.', '',
           '/ plain GPT: the ratio of the medians, and in brackets the lowest and highest of '
           'the rounds\' own ratios. Compile: tracing, lowering and compiling the step ahead of '
           f'time (jit); warm-up: the first {results["warmup"]} steps after it (compilation '
           'included under pmap).',
           '',
           '| model | params | step ms | tokens/s | / plain GPT (rounds) | / slot memory | MFU | '
           'step memory GB | compile s | warm-up s |', '|---|---|---|---|---|---|---|---|---|---|']
  models = results['models']
  for name, r in models.items():
    mfu = f'{100 * r["mfu"]:.1f}%' if r['mfu'] is not None else 'n/a'
    over_slots = (f'{r["tokens_per_second"] / models["memgpt_slots"]["tokens_per_second"]:.3f}'
                  if 'memgpt_slots' in models else '-')
    lines.append(f'| {name} | {r["params"]:,} | {r["step_ms"]:.0f} | '
                 f'{r["tokens_per_second"]:,.0f} | {ratio_with_spread(r)} | '
                 f'{over_slots} | {mfu} | {gigabytes(r.get("step_memory_bytes"))} | '
                 f'{seconds(r.get("compile_seconds"))} | {r["warmup_seconds"]:.1f} |')
  for name, message in results['did_not_fit'].items():
    lines += ['', f'{name} did not fit in device memory: {message}']
  if results['profile']:
    lines += ['', *step_profile.table(results['profile'])]
  if results.get('profile_kinds'):
    lines += ['', *step_profile.kinds_table(results['profile_kinds']),
              '', *step_profile.heaviest_table(results['profile_heaviest'])]
  decoding = results['decoding']
  if not decoding:
    return '\n'.join(lines) + '\n'
  lines += ['', f'Decoding, the model of --config, after {decoding[0]["context"]} tokens of '
            'context (new tokens sampled at temperature 1):',
            '', '| batch | cached tokens/s | uncached tokens/s | cached / uncached | '
            '/ batch 1 (cached) |', '|---|---|---|---|---|']
  for r in decoding:
    lines.append(f'| {r["batch"]} | {r["cached_tokens_per_second"]:,.0f} | '
                 f'{r["uncached_tokens_per_second"]:,.1f} | '
                 f'{r["cached_tokens_per_second"] / r["uncached_tokens_per_second"]:.0f} | '
                 f'{r["cached_tokens_per_second"] / decoding[0]["cached_tokens_per_second"]:.1f} |')
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  config = _CONFIG.value
  name = _NAME.value or f'bench_{jax.devices()[0].platform}'
  results = {'name': name, **provenance(), 'device': devices(),
             'dtype': config.model.dtype, 'batch_size': config.train.batch_size,
             'grad_accum_steps': config.train.grad_accum_steps,
             'seq_len': config.model.segment_len * config.model.num_segments,
             'rounds': _ROUNDS.value, 'steps': _STEPS.value, 'warmup': _WARMUP.value}
  if 'plain_gpt' not in _MODELS.value or set(_MODELS.value) - {'plain_gpt', *VARIANTS}:
    raise app.UsageError(f'--models: plain_gpt and any of {", ".join(VARIANTS)} '
                         f'(got {",".join(_MODELS.value)})')
  if set(_PROFILE.value) - set(_MODELS.value):
    raise app.UsageError(f'--profile: models among --models (got {",".join(_PROFILE.value)})')
  configs = {'plain_gpt': config_lib.plain_gpt(config)}
  for variant in (v for v in _MODELS.value if v in VARIANTS):
    base, settings = VARIANTS[variant]
    configs[variant] = (configs['plain_gpt'] if base == 'plain_gpt' else config
                        ).copy_and_resolve_references()
    for key, value in settings.items():
      config_lib.set_dotted(configs[variant], key, value)
  models, results['did_not_fit'] = {}, {}
  for variant, variant_config in configs.items():
    try:
      models[variant] = Timed(variant_config)
    except jax.errors.JaxRuntimeError as error:  # the others are still worth timing
      if 'RESOURCE_EXHAUSTED' not in str(error):
        raise
      results['did_not_fit'][variant] = str(error).splitlines()[0]
  for _ in range(_ROUNDS.value):
    for model in models.values():
      model.time_round()
  results['models'] = {variant: model.summary() for variant, model in models.items()}
  plain = results['models'].get('plain_gpt')
  for r in results['models'].values():
    r['over_plain_gpt'] = r['tokens_per_second'] / plain['tokens_per_second'] if plain else None
    # Each round's own ratio: the models' rounds of one turn run side by side, so the
    # spread of these is how far the ratio moves with the machine's state.
    r['over_plain_gpt_rounds'] = [p / m for p, m in zip(
        plain['step_ms_rounds'], r['step_ms_rounds'])] if plain else []
  results['decoding'] = []
  for key in ('profile', 'profile_kinds', 'profile_heaviest'):
    results[key] = {}
  # Written after each stage: a later stage that fails keeps what the earlier measured.
  write_results(_OUT.value, name, results, markdown(results))
  for variant in (v for v in _PROFILE.value if v in models):
    by_part, by_kind, heaviest = models[variant].profile()
    results['profile'][variant] = by_part
    results['profile_kinds'][variant] = by_kind
    results['profile_heaviest'][variant] = heaviest
  write_results(_OUT.value, name, results, markdown(results))
  decode_cfg = config_lib.validate(config, declared_vocab_size(config.data))
  for batch in _DECODE_BATCHES.value:
    results['decoding'].append(decoding_speed(decode_cfg, int(batch)))
  table = markdown(results)
  print(table)
  write_results(_OUT.value, name, results, table)


if __name__ == '__main__':
  host_memory.run(app.run, main)
