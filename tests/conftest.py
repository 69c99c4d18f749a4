"""Shared fixtures: tiny model configs that compile in seconds on a 2-core CPU."""

import contextlib
import functools
import importlib
import importlib.util
import os
import pathlib
import shutil
import sys
import tempfile

# The tests' models are tiny, so XLA's compile time is most of their time on a CPU:
# skip LLVM's optimisation passes, and emit fusions the older way (XLA's MLIR fusion
# emitters take 2-3x longer to compile the tiny train step, for the same step time).
# Set before jax starts its backend; the processes tests start inherit it
# (tests/multidevice.py).
os.environ['XLA_FLAGS'] = ' '.join([
    os.environ.get('XLA_FLAGS', ''), '--xla_backend_optimization_level=0',
    '--xla_cpu_use_fusion_emitters=false']).strip()

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
import flax.linen as nn  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
import ml_collections  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position
from _pytest import runner  # pylint: disable=g-import-not-at-top,wrong-import-position

from memgpt_jax import config_lib, host_memory, losses
from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.transformer import MemGPT, init_tokens

ROOT = pathlib.Path(__file__).resolve().parents[1]
VOCAB = 64
_CACHE_VARIABLE = 'JAX_COMPILATION_CACHE_DIR'
_made_cache = []  # the cache folder this process made, removed when the run ends


def pytest_configure(config):
  """One XLA compilation cache for the whole run: many tests compile the same tiny
  models, and compiling is most of their time on a CPU. Made by the first process (the
  xdist controller), inherited by its workers and by the processes tests start."""
  del config
  if _CACHE_VARIABLE not in os.environ:
    os.environ[_CACHE_VARIABLE] = tempfile.mkdtemp(prefix='memgpt-jax-compilation-')
    _made_cache.append(os.environ[_CACHE_VARIABLE])
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  jax.config.update('jax_compilation_cache_dir', os.environ[_CACHE_VARIABLE])
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)


def pytest_unconfigure(config):
  del config
  for folder in _made_cache:
    shutil.rmtree(folder, ignore_errors=True)


# The files that take longest (pytest --durations=0), longest first. `make test` runs
# files whole on 2 workers in collection order (--dist loadfile --no-loadscope-reorder):
# started first, they leave the short files to fill in at the end, and neither worker
# waits for the other's last long file.
LONGEST_FIRST = ('test_streams', 'test_parallel', 'test_seq2seq', 'test_fast_paths',
                 'test_ablate', 'test_encoder_decoder', 'test_import', 'test_model',
                 'test_chat', 'test_reliability', 'test_distributed', 'test_delta_memory',
                 'test_cli', 'test_baseline_and_decoding')


def pytest_collection_modifyitems(items):
  rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: in-file order kept


# absl flags defined by the scripts load_module loaded (e.g. ablate.py's --workdir):
# absl's flags are one global set, so a program run in-process sets these aside.
SCRIPT_FLAGS = set()


def load_module(path: str):
  """The module of a script that is not in a package, e.g. 'experiments/ablate.py';
  it imports its neighbours as when it runs (its folder on sys.path)."""
  path = ROOT / path
  if str(path.parent) not in sys.path:
    sys.path.append(str(path.parent))
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  defined = set(flags.FLAGS)
  spec.loader.exec_module(module)
  SCRIPT_FLAGS.update(set(flags.FLAGS) - defined)
  return module


@contextlib.contextmanager
def program_flags(module_name: str):
  """Imports the program `module_name` (e.g. 'memgpt_jax.cli.train') afresh, with
  absl's flags as when it runs alone: the scripts' flags are set aside meanwhile, and
  the flags its import defined are removed afterwards, with the modules that defined
  them. -> the module."""
  aside = {name: flags.FLAGS[name] for name in SCRIPT_FLAGS}
  for name in aside:
    delattr(flags.FLAGS, name)
  defined = set(flags.FLAGS)
  sys.modules.pop(module_name, None)
  try:
    yield importlib.import_module(module_name)
  finally:
    added = set(flags.FLAGS) - defined
    for module, module_flags in flags.FLAGS.flags_by_module_dict().items():
      if added & {flag.name for flag in module_flags}:
        sys.modules.pop(module, None)  # its next import defines them again
    for name in added:
      delattr(flags.FLAGS, name)
    for name, flag in aside.items():
      flags.FLAGS[name] = flag


def load_config(name: str = 'tiny') -> ml_collections.ConfigDict:
  """configs/<name>.py's get_config(), loaded the way the CLI loads it (by path)."""
  return config_lib.load_config(ROOT / 'configs' / f'{name}.py')


def tiny_train_config(data_dir: str, **train) -> ml_collections.ConfigDict:
  """configs/tiny.py for 8 logged steps, a checkpoint every 4, data under `data_dir`;
  `train` overrides train.* settings."""
  config = load_config('tiny')
  config.data.tfds_data_dir = data_dir
  config.train.num_steps = 8
  config.train.log_every = 1
  config.train.eval_every = 8
  config.train.checkpoint_every = 4
  config.train.eval_batches = 1
  for key, value in train.items():
    config.train[key] = value
  return config


def copy_config(data_dir: str, segment_len: int = 64, num_segments: int = 4):
  """configs/copy_summary.py (seq2seq), shrunk: a tiny model and a few dozen reports."""
  config = load_config('copy_summary')
  tiny = load_config('tiny')
  config.model = tiny.model
  config.model.segment_len, config.model.num_segments = segment_len, num_segments
  config.data.tfds_data_dir = data_dir
  config.data.task.num_train, config.data.task.num_eval = 64, 8
  config.train.update(batch_size=4, num_steps=4, log_every=2, eval_every=4, eval_batches=2,
                      checkpoint_every=4, generate_examples=4, generate_max_tokens=8,
                      async_checkpointing=False)
  return config


def text_config(data_dir: str, tmp_path):
  """configs/tiny.py on a small text file of Python under `tmp_path`, 4 steps."""
  config = load_config('tiny')
  text = tmp_path / 'code.txt'
  text.write_text('def f(x):\n  return x + 1\n' * 40)
  config.data.source, config.data.paths = 'text', str(text)
  config.data.tfds_data_dir = data_dir
  config.train.update(num_steps=4, eval_every=4, checkpoint_every=4, eval_batches=1,
                      async_checkpointing=False)
  return config


def trained_on_text(data_dir: str, root: pathlib.Path) -> pathlib.Path:
  """A workdir under `root` of text_config's model trained two steps: a model to load,
  sample and talk with when what it says does not matter."""
  from memgpt_jax.training.trainer import train_and_evaluate  # pylint: disable=g-import-not-at-top
  config = text_config(data_dir, root)
  config.train.update(num_steps=2, eval_every=2, checkpoint_every=2)
  train_and_evaluate(config, root / 'run')
  return root / 'run'


def train_losses(workdir) -> dict[int, float]:
  """{step: training loss} from a workdir's metrics.jsonl."""
  from memgpt_jax.training.metrics_writer import read_metrics  # pylint: disable=g-import-not-at-top
  return {r['step']: r['loss'] for r in read_metrics(workdir, 'train')}


def snapshot(directory: pathlib.Path) -> dict[str, tuple[int, int]]:
  """Every file under `directory` with its size and mtime: equal snapshots, nothing written."""
  return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
          for p in directory.rglob('*') if p.is_file()}


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory) -> str:
  """A TFDS data folder for one test module: its datasets are prepared once there."""
  return str(tmp_path_factory.mktemp('tfds'))


MEMORY_KINDS = ('delta', 'slots')


def tiny_model(vocab_size: int = VOCAB, **overrides) -> tuple[MemGPT, ModelConfig]:
  """configs/tiny.py's model with dotted overrides, e.g. {'memory.enabled': False}."""
  model_config = load_config('tiny').model
  for key, value in overrides.items():
    config_lib.set_dotted(model_config, key, value)
  cfg = ModelConfig.from_config(model_config, vocab_size)
  return MemGPT(cfg), cfg


def random_tokens(shape: tuple[int, ...], seed: int = 0, vocab: int = VOCAB) -> jax.Array:
  """Token ids uniform over the vocabulary: [*shape] int32."""
  return jax.random.randint(jax.random.key(seed), shape, 0, vocab, dtype=jnp.int32)


@functools.lru_cache(maxsize=None)
def init_params(model: MemGPT, batch_size: int = 2, seed: int = 0):
  """{'params': ...} as plain arrays (init boxes them with their logical axis names),
  once per model. Op by op: each small program (an initialiser of one shape, an op of
  the one-segment forward pass) compiles once and serves every model of the run, where
  compiling each model's init whole takes 1-3 s (and the test models are many). Scanned
  layers are one program either way (a lax.scan), and whole is then 3x quicker."""
  init = jax.jit(model.init) if model.cfg.scan_layers else model.init
  return nn.unbox(init(jax.random.key(seed), init_tokens(model.cfg, batch_size)))


@functools.partial(jax.jit, static_argnums=0)
def forward(model: MemGPT, params, tokens, doc_ids=None, prefix=None):
  """model.apply, compiled once per model and shape: run op by op, one forward pass
  compiles hundreds of small programs."""
  return model.apply(params, tokens, doc_ids, prefix)


@functools.partial(jax.jit, static_argnums=0)
def full_log_probs(model: MemGPT, params, tokens, doc_ids=None, prefix=None):
  """[B, N, V] next-token log-probs of the full forward pass, compiled."""
  return losses.next_token_log_probs(model.apply(params, tokens, doc_ids, prefix))


@pytest.fixture(scope='session', params=MEMORY_KINDS)
def memgpt(request):
  """The tiny MemGPT (memory + pointer on) with two layers, so that one layer's cache
  feeds the next, and its parameters, once per memory kind."""
  model, _ = tiny_model(**{'memory.kind': request.param, 'num_layers': 2})
  return model, init_params(model)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
  """pytest's own protocol (set-up, call, tear-down: _pytest.runner's), run the way the
  programs run, in a frame stack that stays mapped (memgpt_jax/host_memory.py): tracing
  the tests' models then maps no CPython frame chunks afresh."""
  item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
  host_memory.run(runner.runtestprotocol, item, nextitem=nextitem)
  item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
  return True
