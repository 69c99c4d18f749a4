"""Bad input, checked in-process: each raises a UserError whose one line names the
flag or config key and says what to change. tests/test_cli.py checks that the
programs print such an error as one line with exit status 2."""

import math

import pytest

from conftest import ROOT, load_config, tiny_model
from memgpt_jax import config_lib
from memgpt_jax import sampling
from memgpt_jax.cli.common import config_problem
from memgpt_jax.data import builders
from memgpt_jax.data import synthetic
from memgpt_jax.data.errors import DataError
from memgpt_jax.data.tokenizer import ByteTokenizer
from memgpt_jax.decode import Decoder
from memgpt_jax.errors import ConfigError, UserError
from memgpt_jax.training.trainer import train_and_evaluate

TINY = str(ROOT / 'configs' / 'tiny.py')


@pytest.fixture
def bad_configs(tmp_path):
  """Config files a user could write: one that does not parse, one without get_config."""
  (tmp_path / 'syntax.py').write_text('def get_config(:\n  pass\n')
  (tmp_path / 'no_get_config.py').write_text('CONFIG = {}\n')
  return tmp_path


@pytest.mark.parametrize('name,message', [
    ('syntax.py', r"syntax.py' is not valid Python: invalid syntax \(.*syntax.py, line 1\)"),
    ('no_get_config.py', r"no_get_config.py' has no get_config\(\): define one"),
    ('missing.py', r"missing.py' does not exist"),
])
def test_config_file_that_does_not_load(bad_configs, name, message):
  with pytest.raises(ConfigError, match=message) as raised:
    config_lib.load_config(bad_configs / name)
  assert config_problem([f'--config={bad_configs / name}', '--workdir=w']) == str(raised.value)


def test_command_line_config_problems_are_named():
  """What memgpt-train prints before its flags parser would raise a traceback."""
  assert config_problem(['--workdir=w']) is None
  assert config_problem([f'--config={TINY}', '--config.model.num_layers=1']) is None
  assert config_problem([f'--config={TINY}', '--config.model.nope=3']) == (
      "unknown config key 'model.nope'")


@pytest.mark.parametrize('override,message', [
    ({'model.num_heads': 3}, 'num_heads=3 does not divide model.d_model=32'),
    ({'model.memory.slots.num_slots': -1}, 'num_slots=-1 must be >= 0'),
    ({'data.source': 'text'}, 'data.paths is empty'),
    ({'data.source': 'text', 'data.paths': '/nonexistent/*.txt'}, 'matches no file'),
    ({'data.source': 'text', 'data.paths': '/'}, r"data.paths '/' is a directory: name its "
     r"files, e.g. '/\*.txt'"),
    ({'data.task_metrics': 'bleu'}, "data.task_metrics='bleu' is not one of"),
    ({'data.task_metrics': 'exact_match'}, 'task_metrics needs a seq2seq source'),
    ({'data.source': 'tfds'}, 'data.tfds_name'),
])
def test_bad_training_input_fails_before_any_checkpoint(tmp_path, override, message):
  config = load_config('tiny')
  config.data.tfds_data_dir = str(tmp_path / 'tfds')
  for key, value in override.items():
    config_lib.set_dotted(config, key, value)
  with pytest.raises(UserError, match=message):
    train_and_evaluate(config, tmp_path / 'w')
  assert not (tmp_path / 'w' / 'checkpoints').exists()


def _text_data(tmp_path, text: str):
  """configs/tiny.py's data settings, reading one text file."""
  (tmp_path / 'text.txt').write_text(text)
  data = load_config('tiny').data
  data.source, data.paths = 'text', str(tmp_path / 'text.txt')
  data.tfds_data_dir = str(tmp_path / 'tfds')
  return data


def test_empty_text_file(tmp_path):
  with pytest.raises(DataError, match='data.paths: every file matched by .* is empty'):
    builders.make_builder(_text_data(tmp_path, ''))


def test_text_too_short_for_a_validation_split(tmp_path):
  """4 bytes at validation_fraction 0.1: the cut falls after the last byte."""
  with pytest.raises(DataError, match='4 bytes of text are too short to give both a train '
                     'and a validation split at data.validation_fraction=0.1'):
    builders.prepare(_text_data(tmp_path, 'abcd'))


@pytest.mark.parametrize('source,change,message', [
    ('recall', {'num_values': 0}, 'num_values must be >= 1'),
    ('passkey', {'passkey_len': 0}, 'passkey_len must be >= 1: its digits are the answers'),
    ('copy', {'copy_tokens': 0}, 'copy_tokens must be >= 1: the copied symbols are the'),
    ('copy', {'num_symbols': 0}, r'need 1 <= num_symbols <= 200'),
])
def test_synthetic_task_without_answers(source, change, message):
  """Settings that leave nothing to answer: the loss and accuracy would count no token."""
  task = config_lib.load_config(ROOT / 'configs' / 'synthetic.py').data.task
  task.update(change)
  with pytest.raises(DataError, match=f'data.task: {message}'):
    synthetic.validate(source, task, segment_len=32, num_segments=4)


@pytest.fixture(scope='module')
def decoder():
  """A tiny model over the byte vocabulary; settings are refused before it decodes."""
  model, _ = tiny_model(vocab_size=ByteTokenizer.vocab_size)
  return Decoder(model, params=None)


@pytest.mark.parametrize('settings,message', [
    ({'top_k': 259}, '--top_k=259 must be at most 258, the vocabulary size'),
    ({'top_k': -1}, r'--top_k=-1 must be >= 0 \(0: all tokens\)'),
    ({'temperature': math.nan}, '--temperature=nan must be >= 0'),
    ({'temperature': math.inf}, '--temperature=inf must be >= 0'),
    ({'temperature': -0.5}, '--temperature=-0.5 must be >= 0'),
    ({'top_p': math.nan}, r'--top_p=nan must be in \(0, 1\]'),
    ({'top_p': 0.0}, r'--top_p=0.0 must be in \(0, 1\]'),
    ({'max_new_tokens': 0}, '--max_new_tokens=0 must be >= 1'),
    ({'num_samples': 0}, '--num_samples=0 must be >= 1'),
])
def test_sampling_settings_name_their_flag(decoder, settings, message):
  kwargs = {'max_new_tokens': 4} | settings
  with pytest.raises(UserError, match=message):
    sampling.sample(decoder, ByteTokenizer(), 'x', **kwargs)


@pytest.mark.parametrize('given,message', [
    ({'prompt': ''}, 'the prompt is empty'),
    ({'prompt': 'x', 'prompt_file': 'y'}, 'give exactly one of'),
    ({'prompt': 'x', 'inputs': 'y'}, 'give exactly one of'),
    ({}, 'give exactly one of'),
    ({'prompt_file': '/nonexistent.txt'}, '--prompt_file /nonexistent.txt does not exist'),
])
def test_bad_prompt(given, message):
  with pytest.raises(UserError, match=message):
    sampling.prompt_text(**{'prompt': None, 'prompt_file': None, 'inputs': None} | given)


def test_prompt_file_that_is_not_utf8(tmp_path):
  path = tmp_path / 'latin1.txt'
  path.write_bytes('café au lait'.encode('latin-1'))
  with pytest.raises(UserError, match=f'--prompt_file {path} is not UTF-8 text '
                     r'\(invalid continuation byte at byte 3\)'):
    sampling.prompt_text(None, str(path), None)


def test_inputs_need_a_seq2seq_model():
  with pytest.raises(UserError, match='--inputs is for seq2seq models; w holds a causal LM'):
    sampling.check_takes_inputs(load_config('tiny'), 'w')
  sampling.check_takes_inputs(load_config('copy_summary'), 'w')
