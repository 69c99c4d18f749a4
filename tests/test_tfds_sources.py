"""data.source 'tfds' and the configs of registered TFDS text datasets, on stand-in data.

tfds.testing.mock_data (TFDS 4.9.10) does mock `as_data_source`, but with random
values, no splits and `is_prepared()` False, so it cannot pass through our prepare
and split checks nor show which text a config reads. Instead each dataset gets a
test-only builder with the registered builder's own `_info()` (the same features and
configs), handwritten records and the real split names (read from the builder's
`_split_generators`), prepared to array_record under tmp_path as `tfds build` would,
and read through data.source='tfds'.
"""

import functools

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import load_config
from memgpt_jax.data import builders
from memgpt_jax.data import pipeline
from memgpt_jax.data import records
from memgpt_jax.data.errors import DataError
from memgpt_jax.data.tokenizer import ByteTokenizer

TOK = ByteTokenizer()
_STAND_IN = 'test_only_'

# config file -> (its registered builder's splits, a record with all its features,
# the texts the config must read from it: (text,) or (inputs, targets)).
CASES = {
    'lm1b': (('train', 'test'), {'text': 'The cat sat on the mat .'},
             ('The cat sat on the mat .',)),
    'pg19': (('train', 'validation', 'test'),
             {'book_text': 'CHAPTER I.\n\nIt was a dark night.', 'book_id': 7,
              'book_title': 'A Book', 'publication_date': '1899',
              'book_link': 'http://www.gutenberg.org/ebooks/7'},
             ('CHAPTER I.\n\nIt was a dark night.',)),
    'wiki40b': (('train', 'validation', 'test'),
                {'wikidata_id': 'Q42', 'version_id': '1',
                 'text': '\n_START_ARTICLE_\nDouglas Adams\n_START_PARAGRAPH_\nAn author.'},
                ('\n_START_ARTICLE_\nDouglas Adams\n_START_PARAGRAPH_\nAn author.',)),
    'c4': (('train', 'validation'),
           {'text': 'A page of the web.', 'url': 'https://example.com/',
            'content-type': 'text/plain', 'content-length': '18',
            'timestamp': '2019-04-18T00:00:00Z'},
           ('A page of the web.',)),
    'schema_guided_dialogue': (
        ('train', 'dev', 'test'),
        {'utterances': ['I need a table in San Jose.', 'For what time?', 'Seven pm.'],
         'first_speaker': 'USER', 'metadata': {'services': [{'name': 'Restaurants_1'}]}},
        ('User: I need a table in San Jose.\nAssistant: For what time?\nUser: Seven pm.\n',)),
    'cnn_dailymail': (('train', 'validation', 'test'),
                      {'article': 'The storm hit the coast on Monday.',
                       'highlights': 'Storm hits coast.\nNo one hurt.',
                       'publisher': 'cnn', 'id': '0001'},
                      ('The storm hit the coast on Monday.', 'Storm hits coast.\nNo one hurt.')),
    'xsum': (('train', 'validation', 'test'),
             {'document': 'The council voted to close the library.',
              'summary': 'A library will close.'},
             ('The council voted to close the library.', 'A library will close.')),
    'wmt14_de_en': (('train', 'validation', 'test'),
                    {'de': 'Guten Morgen.', 'en': 'Good morning.'},
                    ('Guten Morgen.', 'Good morning.')),
}
LM_CONFIGS = [name for name in CASES if len(CASES[name][2]) == 1]


def _config(name: str, data_dir) -> ml_collections.ConfigDict:
  config = load_config(name)
  config.data.tfds_data_dir = str(data_dir)
  return config


@functools.cache
def _register_stand_in(real: type, name: str) -> None:
  """Registers test_only_<real.name>: `real`'s features and configs, CASES[name]'s record."""
  splits, record, _ = CASES[name]

  def split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    return {split: self._generate_examples() for split in splits}

  def generate_examples(self):
    yield 0, record

  type(f'StandIn{real.__name__}', (tfds.core.GeneratorBasedBuilder,), {
      'name': _STAND_IN + real.name, 'VERSION': real.VERSION,
      'BUILDER_CONFIGS': real.BUILDER_CONFIGS, '_info': real._info,
      # Builders in tensorflow_datasets/datasets/ describe themselves from their own
      # package's README and citation files.
      'get_metadata': real.get_metadata,
      '_split_generators': split_generators, '_generate_examples': generate_examples})


def _stand_in_config(name: str, data_dir) -> ml_collections.ConfigDict:
  """configs/<name>.py reading a prepared stand-in of its dataset (same config/version)."""
  config = _config(name, data_dir)
  real = type(builders.make_builder(config.data))  # The class data.tfds_name resolves to.
  _register_stand_in(real, name)
  config.data.tfds_name = _STAND_IN + config.data.tfds_name
  tfds.builder(config.data.tfds_name, data_dir=str(data_dir),
               file_format='array_record').download_and_prepare()  # = `tfds build`.
  return config


@pytest.mark.parametrize('name', CASES)
def test_config_reads_the_right_texts_from_its_splits(tmp_path, name):
  config = _stand_in_config(name, tmp_path / 'tfds')
  builder = builders.prepare(config.data)
  for split in (config.data.train_split, config.data.eval_split):
    source = builders.split_source(builder, split)
    assert records.record_texts(source[0], config.data) == CASES[name][2]


@pytest.mark.parametrize('name', LM_CONFIGS)
def test_lm_config_yields_training_batches(tmp_path, name):
  config = _stand_in_config(name, tmp_path / 'tfds')
  config.model.segment_len, config.model.num_segments = 8, 2
  config.train.batch_size = 2
  config.data.shuffle_window_tokens = 100  # A few copies of the one record a window.
  batch = next(pipeline.make_train_iterator(config, TOK, 0, 1))
  assert batch['inputs'].shape == batch['targets'].shape == (2, 16)
  np.testing.assert_array_equal(batch['inputs'][:, 1:], batch['targets'][:, :-1])
  (text,) = CASES[name][2]
  for row, docs in zip(batch['inputs'], batch['doc_ids']):
    for doc in np.unique(docs):  # The one record, repeated: any piece is a stretch of it.
      assert TOK.decode(row[docs == doc]) in text


@pytest.mark.parametrize('name', [name for name in CASES if name not in LM_CONFIGS])
def test_seq2seq_config_yields_prefix_lm_rows(tmp_path, name):
  config = _stand_in_config(name, tmp_path / 'tfds')
  config.model.segment_len, config.model.num_segments = 32, 4
  config.train.batch_size = 2
  batch = next(pipeline.make_train_iterator(config, TOK, 0, 1))
  inputs, targets = CASES[name][2]
  row = batch['inputs'][0][batch['doc_ids'][0] == 1]
  prefix = batch['prefix'][0][batch['doc_ids'][0] == 1]
  assert TOK.decode(row[prefix]) == inputs  # inputs, then eos (dropped by decode)
  trained = (batch['mask'][0] > 0) & (batch['doc_ids'][0] == 1)
  assert TOK.decode(batch['targets'][0][trained]) == targets


@pytest.mark.parametrize('name', CASES)
def test_unprepared_dataset_says_how_to_build_it_and_writes_nothing(tmp_path, name):
  config = _config(name, tmp_path / 'tfds')
  with pytest.raises(DataError) as error:
    builders.prepare(config.data)
  message = str(error.value)
  assert f'tfds build {config.data.tfds_name} --file_format=array_record' in message
  assert 'data.tfds_data_dir' in message and '\n' not in message
  assert not (tmp_path / 'tfds').exists()


@pytest.mark.parametrize('tfds_name, match', [
    ('no_such_dataset', r"data.tfds_name 'no_such_dataset' is not a registered TFDS dataset"),
    ('', r"data.source 'tfds' needs data.tfds_name"),
    ('wiki40b/xx', r"data.tfds_name 'wiki40b/xx': .*BuilderConfig xx not found"),
    ('lm1b:9.9.9', r"data.tfds_name 'lm1b:9.9.9': .*version 9.9.9"),
])
def test_bad_tfds_name_raises_one_line(tmp_path, tfds_name, match):
  config = _config('lm1b', tmp_path / 'tfds')
  config.data.tfds_name = tfds_name
  with pytest.raises(DataError, match=match) as error:
    builders.prepare(config.data)
  assert '\n' not in str(error.value)


def test_missing_split_names_the_split_keys(tmp_path):
  config = _stand_in_config('lm1b', tmp_path / 'tfds')
  builder = builders.prepare(config.data)
  with pytest.raises(DataError, match=r"has no 'validation' split \(it has test, train\): "
                                      r'set data.train_split and data.eval_split'):
    builders.split_source(builder, 'validation')


def test_dataset_prepared_in_another_format_says_to_rebuild(tmp_path):
  config = _stand_in_config('lm1b', tmp_path / 'array_record')
  tfds.builder(config.data.tfds_name, data_dir=str(tmp_path / 'parquet'),
               file_format='parquet').download_and_prepare()
  config.data.tfds_data_dir = str(tmp_path / 'parquet')
  with pytest.raises(DataError, match=r'prepared as parquet, not array_record: rebuild it '
                                      r'with `tfds build test_only_lm1b --file_format='
                                      r'array_record'):
    builders.prepare(config.data)
