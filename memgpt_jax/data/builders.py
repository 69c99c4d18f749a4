"""TFDS builders for the project's own corpora, prepared to array_record (no TensorFlow).

Text sources: the Python standard library's source, which every machine has, and
local text files. Both write one record per document, {'text', 'path'}, in a
fixed order, so a prepared split reads back the same on every machine and run. The
library's source comes as one document per file ('pystdlib') or, for long-document
work, one per package, its files joined in order ('pystdlib_packages': documents of
10K-1.4M bytes, the corpus of the streams layout's tests and default long run).
Synthetic sources (memgpt_jax/data/synthetic.py: recall, passkey, copy, induction)
write one fixed-length row per example, {'tokens', 'answers'}.

data.source 'tfds' reads any registered TFDS dataset by name (data.tfds_name, e.g.
'lm1b', 'wiki40b/en', 'wmt14_translate/de-en'). Those are never downloaded or built
here: they must already be prepared in array_record (`tfds build NAME
--file_format=array_record`), because building them needs TensorFlow (and for some
Apache Beam, manual downloads or hours of compute) that a training job should not.
"""

import collections
import dataclasses
import functools
import glob
import hashlib
import importlib
import json
import os
import sys
import sysconfig

import grain
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from memgpt_jax.data import copy_task, filler, synthetic, translation_task
from memgpt_jax.data.errors import DataError

# Installed packages vary per machine; tests are not the library's code.
_EXCLUDED_DIRS = frozenset(
    {'site-packages', 'dist-packages', 'test', 'tests', 'idle_test', '__pycache__'})
# data.source of the stdlib corpus: a document per file, or per package.
STDLIB_SOURCES = ('pystdlib', 'pystdlib_packages')
# (split, end of its range of buckets in [0, 100)).
_STDLIB_SPLITS = (('train', 90), ('validation', 95), ('test', 100))
# TFDS 4.9.10 registers its older builders (c4, wiki40b, xsum, cnn_dailymail, wmt*)
# by importing all their packages in one loop that stops at the first ImportError
# (nearest_neighbors needs h5py), which leaves these unregistered. Their packages:
_TFDS_TEXT_PACKAGES = ('question_answering', 'summarization', 'text', 'text_simplification',
                       'translate')


def _features() -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({'text': tfds.features.Text(), 'path': tfds.features.Text()})


def _digest(value: object) -> str:
  return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:12]


def stdlib_split(relpath: str) -> str:
  """Returns the split of a stdlib file: a function of its relative path only."""
  bucket = int.from_bytes(hashlib.sha256(relpath.encode()).digest()[:8], 'big') % 100
  return next(split for split, end in _STDLIB_SPLITS if bucket < end)


def stdlib_files(root: str) -> list[str]:
  """Returns the sorted relative (posix) paths of the library's *.py files under `root`."""
  relpaths = []
  for dirpath, dirnames, filenames in os.walk(root):
    # config-3.x-<platform>/ holds a build-specific script, not library code.
    dirnames[:] = [d for d in dirnames if d not in _EXCLUDED_DIRS and not d.startswith('config-')]
    rel_dir = os.path.relpath(dirpath, root)
    relpaths.extend(
        os.path.normpath(os.path.join(rel_dir, f)).replace(os.sep, '/')
        for f in filenames if f.endswith('.py'))
  return sorted(relpaths)


def stdlib_documents(relpaths: list[str], by_package: bool) -> dict[str, list[str]]:
  """{document name: its files in order}: a file each, or with `by_package` one
  document per top-level package (its files in sorted order) and per top-level module."""
  documents = collections.defaultdict(list)
  for relpath in relpaths:
    documents[relpath.split('/')[0] if by_package else relpath].append(relpath)
  return documents


@dataclasses.dataclass(eq=False)
class StdlibConfig(tfds.core.BuilderConfig):
  root: str = ''
  by_package: bool = False


def stdlib_config(root: str | None = None, by_package: bool = False) -> StdlibConfig:
  """One config per Python major.minor (the corpus differs); another root gets its own."""
  name = f'py{sys.version_info.major}_{sys.version_info.minor}'
  if root is None:
    root = sysconfig.get_paths()['stdlib']
  else:
    name += '_' + _digest(os.path.abspath(root))
  if by_package:
    name += '_packages'
  return StdlibConfig(name=name, root=root, by_package=by_package,
                      description=f'*.py under {root}' + (', by package' if by_package else ''))


class PyStdlib(tfds.core.GeneratorBasedBuilder):
  """The Python standard library's source, split 90/5/5 by a hash of each document's
  name: a file's path, or a package's (stdlib_documents). A package's document is its
  files joined in sorted order, each opened by a comment line naming it."""

  VERSION = tfds.core.Version('1.0.0')

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(builder=self, features=_features(), disable_shuffling=True)

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    config = self.builder_config
    by_split = collections.defaultdict(list)
    for name, relpaths in stdlib_documents(stdlib_files(config.root), config.by_package).items():
      texts = [(relpath, _utf8_file(os.path.join(config.root, relpath))) for relpath in relpaths]
      texts = [(relpath, text) for relpath, text in texts if text]
      if config.by_package:
        text = ''.join(f'# {relpath}\n{text}' for relpath, text in texts)
      else:
        text = texts[0][1] if texts else ''
      if text:
        by_split[stdlib_split(name)].append((name, text))
    return {split: self._generate_examples(docs) for split, docs in by_split.items()}

  def _generate_examples(self, docs):
    for relpath, text in docs:
      yield relpath, {'text': text, 'path': relpath}


def _utf8_file(path: str) -> str:
  """The file's text; '' (left out) for one that is not UTF-8."""
  with open(path, 'rb') as f:
    data = f.read()
  try:
    return data.decode('utf-8')
  except UnicodeDecodeError:
    return ''


def text_files(paths: str) -> list[str]:
  """Expands `data.paths` (files, globs, comma-separated; ~ allowed) to sorted files."""
  files = set()
  for pattern in filter(None, (p.strip() for p in paths.split(','))):
    if os.path.isdir(os.path.expanduser(pattern)):
      raise DataError(f'data.paths {pattern!r} is a directory: name its files, e.g. '
                      f"'{pattern.rstrip('/')}/*.txt' (or '/**/*.txt' for every level)")
    matched = [f for f in glob.glob(os.path.expanduser(pattern), recursive=True)
               if os.path.isfile(f)]
    if not matched:
      raise DataError(f'data.paths {pattern!r} matches no file')
    files.update(os.path.abspath(f) for f in matched)
  if not files:
    raise DataError("data.paths is empty: for data.source 'text' set it to a file or a glob")
  return sorted(files)


@dataclasses.dataclass(eq=False)
class TextFilesConfig(tfds.core.BuilderConfig):
  files: tuple[str, ...] = dataclasses.field(default=(), repr=False)  # TFDS logs the repr.
  validation_fraction: float = 0.0


def text_files_config(paths: str, validation_fraction: float) -> TextFilesConfig:
  """Names the config after the files' paths, sizes and mtimes, so edits force a rebuild."""
  if not 0 <= validation_fraction < 1:
    raise DataError(f'data.validation_fraction {validation_fraction} is not in [0, 1)')
  files = text_files(paths)
  stats = [os.stat(f) for f in files]
  if not any(s.st_size for s in stats):
    raise DataError(f'data.paths: every file matched by {paths!r} is empty')
  key = [[f, s.st_size, s.st_mtime_ns] for f, s in zip(files, stats)] + [validation_fraction]
  return TextFilesConfig(
      name=f'files_{_digest(key)}', files=tuple(files),
      validation_fraction=validation_fraction, description=f'{len(files)} files from {paths}')


def _char_boundary(data: bytes, cut: int) -> int:
  """Moves a byte offset forward past UTF-8 continuation bytes."""
  while cut < len(data) and data[cut] & 0xC0 == 0x80:
    cut += 1
  return cut


class TextFiles(tfds.core.GeneratorBasedBuilder):
  """Local text files, one record per file; validation is the text's last fraction.

  The files, in sorted order, are one sequence of bytes; the last
  `validation_fraction` of it is the validation split (the file the cut falls in
  is split in two, at a character boundary). There is no test split.
  """

  VERSION = tfds.core.Version('1.0.0')

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(builder=self, features=_features(), disable_shuffling=True)

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    config = self.builder_config
    sizes = [os.path.getsize(f) for f in config.files]
    cut = round(sum(sizes) * (1 - config.validation_fraction))
    pieces = {'train': [], 'validation': []}  # (path, start byte, stop byte)
    start = 0
    for path, size in zip(config.files, sizes):
      split_at = min(max(cut - start, 0), size)
      if 0 < split_at < size:
        with open(path, 'rb') as f:
          split_at = _char_boundary(f.read(), split_at)
      if split_at > 0:
        pieces['train'].append((path, 0, split_at))
      if split_at < size:
        pieces['validation'].append((path, split_at, size))
      start += size
    if config.validation_fraction and not all(pieces.values()):
      raise DataError(f'data.paths: {start} bytes of text are too short to give both a '
                      'train and a validation split at data.validation_fraction='
                      f'{config.validation_fraction}: give more text, or set '
                      "data.validation_fraction=0 and data.eval_split='train'")
    return {split: self._generate_examples(p) for split, p in pieces.items() if p}

  def _generate_examples(self, pieces):
    for path, start, stop in pieces:
      with open(path, 'rb') as f:
        data = f.read()[start:stop]
      try:
        text = data.decode('utf-8')
      except UnicodeDecodeError as e:
        raise DataError(f'data.paths: {path!r} is not UTF-8 text ({e.reason} at byte '
                        f'{start + e.start})') from None
      yield f'{path}@{start}', {'text': text, 'path': path}


@dataclasses.dataclass(eq=False)
class SyntheticConfig(tfds.core.BuilderConfig):
  task: str = ''
  settings: dict = dataclasses.field(default_factory=dict)
  segment_len: int = 0
  num_segments: int = 0


def synthetic_task(data_config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """data.task, and for the dialogue task the turn template (data.chat) its turns are
  written with: every setting the task's examples depend on."""
  if data_config.source != 'dialogue':
    return data_config.task
  return ml_collections.ConfigDict(data_config.task.to_dict() | {'chat': data_config.chat.to_dict()})


def synthetic_config(data_config: ml_collections.ConfigDict, segment_len: int,
                     num_segments: int) -> SyntheticConfig:
  """Names the config after the task's settings and the row layout: a change rebuilds."""
  task, task_config = data_config.source, synthetic_task(data_config)
  synthetic.validate(task, task_config, segment_len, num_segments)
  settings = synthetic.task_settings(task, task_config)
  key = [task, settings, segment_len, num_segments]
  if task in synthetic.REVISIONS:
    key.append(synthetic.REVISIONS[task])
  if settings.get('filler') == 'corpus':  # another standard library: other data
    key.append(filler.corpus_digest())
  return SyntheticConfig(name=f'{task}_{_digest(key)}', task=task, settings=settings,
                         segment_len=segment_len, num_segments=num_segments,
                         description=f'{task} {settings}, T={segment_len} K={num_segments}')


class Synthetic(tfds.core.GeneratorBasedBuilder):
  """A synthetic long-range task: train/validation/test and one split per eval distance."""

  VERSION = tfds.core.Version('1.0.0')

  def _info(self) -> tfds.core.DatasetInfo:
    features = tfds.features.FeaturesDict({
        'tokens': tfds.features.Tensor(shape=(None,), dtype=np.int32),
        'answers': tfds.features.Tensor(shape=(None,), dtype=np.bool_)})
    return tfds.core.DatasetInfo(builder=self, features=features, disable_shuffling=True)

  def _split_generators(self, dl_manager):
    del dl_manager  # Generated locally.
    task = ml_collections.ConfigDict(self.builder_config.settings)
    return {split: self._generate_examples(task, split) for split in synthetic.split_names(task)}

  def _generate_examples(self, task: ml_collections.ConfigDict, split: str):
    config = self.builder_config
    for index in range(synthetic.split_size(task, split)):
      yield index, synthetic.make_example(config.task, task, config.segment_len,
                                          config.num_segments, split, index)


@functools.cache
def _register_tfds_text_builders() -> None:
  for package in _TFDS_TEXT_PACKAGES:
    try:
      importlib.import_module(f'tensorflow_datasets.{package}')
    except ImportError:
      pass  # A dependency of one of its builders is missing: those stay unregistered.


def _tfds_builder(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
  """The builder of a registered TFDS dataset ('name[/config][:version]'), maybe unprepared.

  No file_format is passed: on data prepared in another format TFDS would raise
  at construction, and `prepare` names the fix instead.
  """
  if not name:
    raise DataError("data.source 'tfds' needs data.tfds_name, a registered TFDS dataset "
                    "such as 'lm1b' or 'wiki40b/en'")
  _register_tfds_text_builders()
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.DatasetNotFoundError:
    raise DataError(f'data.tfds_name {name!r} is not a registered TFDS dataset (nor '
                    'prepared under data.tfds_data_dir); they are listed at '
                    'https://www.tensorflow.org/datasets/catalog/overview') from None
  except (ValueError, AssertionError) as e:  # A bad config (ValueError) or version.
    raise DataError(f'data.tfds_name {name!r}: {" ".join(str(e).split())}') from None


def _check_tfds_prepared(builder: tfds.core.DatasetBuilder, name: str) -> None:
  """Raises DataError saying how to prepare `name` unless it is there in array_record."""
  root = builder.data_dir_root
  if not builder.is_prepared():
    raise DataError(
        f'TFDS dataset {name!r} is not prepared in {root} (it is never downloaded here): '
        f'run `tfds build {name} --file_format=array_record --data_dir={root}` where '
        'TensorFlow is installed, or point --config.data.tfds_data_dir at a directory '
        'that has it')
  formats = builder.info.available_file_formats()
  if tfds.core.FileFormat.ARRAY_RECORD not in formats:
    raise DataError(
        f'TFDS dataset {name!r} in {builder.data_dir} is prepared as '
        f'{", ".join(sorted(f.value for f in formats))}, not array_record: rebuild it with '
        f'`tfds build {name} --file_format=array_record --data_dir={root}` or convert it '
        f'with `tfds convert_format --dataset_version_dir={builder.data_dir} '
        '--out_file_format=array_record`')


def row_layout(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """(segment_len, num_segments) a synthetic task lays its rows out in: the model's,
  unless data.task.segment_len / num_segments name another (a plain GPT baseline keeps
  the layout of the MemGPT it is compared with)."""
  task = config.data.get('task') or {}
  return (task.get('segment_len') or config.model.segment_len,
          task.get('num_segments') or config.model.num_segments)


def make_builder(data_config: ml_collections.ConfigDict, segment_len: int = 0,
                 num_segments: int = 0) -> tfds.core.DatasetBuilder:
  """Returns the (maybe not yet prepared) builder that `config.data` names.

  Synthetic rows are laid out in segments: those sources need the model's
  segment_len and num_segments.
  """
  data_dir = os.path.expanduser(data_config.tfds_data_dir) or None
  if data_config.source == 'tfds':
    return _tfds_builder(data_config.tfds_name, data_dir)
  kwargs = dict(data_dir=data_dir, file_format='array_record')
  if data_config.source in STDLIB_SOURCES:
    return PyStdlib(config=stdlib_config(by_package=data_config.source == 'pystdlib_packages'),
                    **kwargs)
  if data_config.source == 'text':
    config = text_files_config(data_config.paths, data_config.validation_fraction)
    return TextFiles(config=config, **kwargs)
  if data_config.source in synthetic.TASKS:
    if segment_len < 1 or num_segments < 1:
      raise DataError(f'data.source {data_config.source!r} needs segment_len and '
                      'num_segments')
    return Synthetic(config=synthetic_config(data_config, segment_len, num_segments),
                     **kwargs)
  if data_config.source in SEQ2SEQ_TASKS:
    return SEQ2SEQ_TASKS[data_config.source].from_task(data_config.task, **kwargs)
  raise DataError(f'unknown data.source {data_config.source!r} (choose '
                  f'{", ".join(STDLIB_SOURCES)} or text), '
                  f"'tfds' with data.tfds_name, a seq2seq task ({', '.join(SEQ2SEQ_TASKS)}) "
                  f'or a synthetic task ({", ".join(synthetic.TASKS)})')


# The built-in seq2seq tasks: data.source -> its builder.
SEQ2SEQ_TASKS = {copy_task.SOURCE: copy_task.CopySummary,
                 translation_task.SOURCE: translation_task.ToyTranslation}


def is_synthetic(data_config: ml_collections.ConfigDict) -> bool:
  return data_config.source in synthetic.TASKS


def prepare(data_config: ml_collections.ConfigDict, segment_len: int = 0,
            num_segments: int = 0) -> tfds.core.DatasetBuilder:
  """Builds the data set if needed (process 0 first, others wait) and returns its builder.

  Safe to call again: prepared data is reused. Where processes share no filesystem,
  each one builds its own copy after process 0. A 'tfds' source is only checked
  (each process on its own: nothing is written), never built.
  """
  make = functools.partial(make_builder, data_config, segment_len, num_segments)
  builder = make()
  if data_config.source == 'tfds':
    _check_tfds_prepared(builder, data_config.tfds_name)
    return builder
  if jax.process_count() > 1:
    if jax.process_index() == 0:
      builder.download_and_prepare()
    multihost_utils.sync_global_devices('memgpt_jax.data.prepare')
    builder = make()  # Sees what process 0 wrote.
  builder.download_and_prepare()
  return builder


def split_source(builder: tfds.core.DatasetBuilder,
                 split: str) -> grain.sources.RandomAccessDataSource:
  """Returns a random-access source over a prepared split (array_record, no TensorFlow)."""
  if split not in builder.info.splits:
    raise DataError(f'{builder.info.full_name} has no {split!r} split (it has '
                    f'{", ".join(sorted(builder.info.splits))}): set data.train_split and '
                    'data.eval_split to splits it has')
  return builder.as_data_source(split=split, file_format='array_record')


def stdlib_text(limit: int) -> tuple[str, list[str]]:
  """The default corpus's first UTF-8 files (sorted by path) joined, at most `limit`
  bytes in all; and their paths."""
  root = stdlib_config().root
  texts, paths, size = [], [], 0
  for relpath in stdlib_files(root):
    with open(os.path.join(root, relpath), 'rb') as f:
      data = f.read()
    if size + len(data) > limit:
      break
    try:
      texts.append(data.decode('utf-8'))
    except UnicodeDecodeError:
      continue
    paths.append(relpath)
    size += len(data)
  return ''.join(texts), paths
