"""data.tokenizer='huggingface': a tokenizer.json read as a table of bytes. Tokenizers
of both styles are trained here on a few lines (nothing is downloaded): a byte-level
BPE (GPT-2's family) and a SentencePiece-style BPE with byte fallback (Llama's)."""

import json

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest
import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from conftest import load_config
from memgpt_jax.data import pipeline
from memgpt_jax.data.errors import DataError
from memgpt_jax.data.tokenizer import make_tokenizer

LINES = ['def add(a, b):\n    return a + b\n', 'The café is open. Ünïcödé: ✓ 日本語\n',
         'class Stack:\n    pass\n'] * 20
TEXTS = ['def f(x):\n    return x  # café ✓\n', ' leading space', 'tab\tand\r\nCRLF', '日本']


def _byte_level(path):
  tokenizer = tokenizers.Tokenizer(models.BPE())
  tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tokenizer.decoder = decoders.ByteLevel()
  tokenizer.train_from_iterator(LINES, trainers.BpeTrainer(
      vocab_size=300, special_tokens=['<|endoftext|>'],
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
  tokenizer.save(str(path))


def _sentencepiece_style(path):
  tokenizer = tokenizers.Tokenizer(models.BPE(byte_fallback=True, unk_token='<unk>'))
  tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme='never')
  tokenizer.decoder = decoders.Sequence([decoders.Replace('\u2581', ' '),
                                         decoders.ByteFallback(), decoders.Fuse()])
  tokenizer.train_from_iterator(LINES, trainers.BpeTrainer(
      vocab_size=400,
      special_tokens=['<unk>', '<s>', '</s>'] + [f'<0x{b:02X}>' for b in range(256)]))
  tokenizer.save(str(path))


STYLES = {'byte_level': (_byte_level, '<|endoftext|>'),
          'sentencepiece_style': (_sentencepiece_style, '</s>')}


def _data(tmp_path, style: str):
  make, eos = STYLES[style]
  make(tmp_path / 'tokenizer.json')
  data = load_config('default').data
  data.tokenizer = 'huggingface'
  data.huggingface.update(tokenizer_file=str(tmp_path / 'tokenizer.json'), eos_token=eos)
  return data


@pytest.mark.parametrize('style', STYLES)
def test_text_round_trips_and_bytes_are_counted_exactly(tmp_path, style):
  """Each id stands for the bytes it encodes: decoding is exact, streamed too, and
  bits per byte counts the text's own bytes."""
  tokenizer = make_tokenizer(_data(tmp_path, style))
  for text in TEXTS:
    ids = tokenizer.encode(text)
    assert ids.dtype == np.int32
    assert tokenizer.decode(ids) == text
    assert tokenizer.num_bytes(ids) == len(text.encode('utf-8'))
    stream = tokenizer.decoder()
    assert ''.join(stream.push(i) for i in ids) + stream.finish() == text
  assert tokenizer.decode([tokenizer.eos_id]) == '' and tokenizer.pad_id == tokenizer.eos_id
  assert len(tokenizer.encode('def add')) < len('def add')  # merges were learned


@pytest.fixture(scope='module')
def byte_level(tmp_path_factory):
  return make_tokenizer(_data(tmp_path_factory.mktemp('byte_level'), 'byte_level'))


@settings(derandomize=True, database=None, deadline=None, max_examples=30)
@given(text=st.text(st.characters(codec='utf-8'), max_size=60))
def test_any_text_round_trips_through_a_byte_level_tokenizer(byte_level, text):
  ids = byte_level.encode(text)
  assert byte_level.decode(ids) == text
  assert byte_level.num_bytes(ids) == len(text.encode('utf-8'))


def test_training_batches_use_its_ids(tmp_path):
  data = _data(tmp_path, 'byte_level')
  (tmp_path / 'a.txt').write_text(''.join(LINES))
  config = load_config('default')
  config.data = data
  config.data.update(source='text', paths=str(tmp_path / 'a.txt'),
                     tfds_data_dir=str(tmp_path / 'tfds'))
  config.model.segment_len, config.model.num_segments, config.train.batch_size = 8, 2, 2
  tokenizer = make_tokenizer(config.data)
  batch = next(pipeline.make_train_iterator(config, tokenizer, 0, 1))
  assert batch['inputs'].shape == (2, 16) and batch['inputs'].max() < tokenizer.vocab_size
  # A row may start or end inside a character (a byte-level piece): the rest is text.
  assert tokenizer.decode(batch['inputs'][0]).strip('\ufffd') in ''.join(LINES) * 2


@pytest.mark.parametrize('change, message', [
    ({'tokenizer_file': ''}, 'needs data.huggingface.tokenizer_file'),
    ({'tokenizer_file': '/nowhere/tokenizer.json'}, 'does not exist'),
    ({'eos_token': '<eos>'}, "data.huggingface.eos_token '<eos>' is not a token of"),
    ({'pad_token': '<pad>'}, "data.huggingface.pad_token '<pad>' is not a token of"),
])
def test_bad_settings_are_one_line(tmp_path, change, message):
  data = _data(tmp_path, 'byte_level')
  data.huggingface.update(change)
  with pytest.raises(DataError, match=message) as error:
    make_tokenizer(data)
  assert '\n' not in str(error.value)


def test_a_file_that_is_not_a_tokenizer_is_one_line(tmp_path):
  data = _data(tmp_path, 'byte_level')
  (tmp_path / 'tokenizer.json').write_text(json.dumps({'not': 'a tokenizer'}))
  with pytest.raises(DataError, match='is not a tokenizer.json') as error:
    make_tokenizer(data)
  assert '\n' not in str(error.value)
