"""SentencePiece tokenizer: trained on the train split on first use, then reused."""

import pathlib

import ml_collections
import numpy as np
import pytest

from conftest import load_config
from memgpt_jax import config_lib
from memgpt_jax.data.errors import DataError
from memgpt_jax.data.tokenizer import MODEL_FILENAME, SentencePieceTokenizer, make_tokenizer

VOCAB = 300  # 256 byte pieces + pad, eos, unk + 41 of text: trains in about a second.
WORDS = ('the', 'memory', 'gate', 'pointer', 'copies', 'a', 'token', 'from', 'context',
         'def', 'return', 'x', 'y', '=', '+', '(', ')', ':', '1', '2')
TEXTS = ['def f(x):\n    return x + 1\n',
         '  leading spaces,  double  spaces and a trailing one \n\n\n',
         'héllo wörld — 日本語 🎉\ttab\r\nzürich',  # characters absent from training
         '\x00 \x7f \U0010ffff',
         '']


def _corpus() -> str:
  """A few KB of lines made of a small alphabet (so 41 text pieces are enough)."""
  rng = np.random.default_rng(0)
  lines = []
  for _ in range(300):
    indent = '    ' * int(rng.integers(0, 3))
    lines.append(indent + ' '.join(rng.choice(WORDS, size=int(rng.integers(1, 9)))))
  return '\n'.join(lines) + '\n'


def _config(tmp_path: pathlib.Path, **sentencepiece) -> ml_collections.ConfigDict:
  corpus = tmp_path / 'corpus.txt'
  if not corpus.exists():
    corpus.write_text(_corpus(), encoding='utf-8')
  config = load_config('default')
  config.data.update(source='text', paths=str(corpus), tfds_data_dir=str(tmp_path / 'tfds'),
                     tokenizer='sentencepiece')
  config.data.sentencepiece.vocab_size = VOCAB
  config.data.sentencepiece.update(sentencepiece)
  return config


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """(config, workdir, tokenizer) of one model trained on the tiny corpus."""
  tmp_path = tmp_path_factory.mktemp('spm')
  config = _config(tmp_path)
  workdir = tmp_path / 'run'
  return config, workdir, make_tokenizer(config.data, workdir)


def test_special_ids(trained):
  _, workdir, tok = trained
  assert isinstance(tok, SentencePieceTokenizer)
  assert tok.vocab_size == VOCAB
  assert tok.pad_id != tok.eos_id and 0 <= tok.pad_id < VOCAB and 0 <= tok.eos_id < VOCAB
  assert sorted(p.name for p in workdir.iterdir()) == [MODEL_FILENAME]  # no temporary left


@pytest.mark.parametrize('text', TEXTS)
def test_round_trip_and_bytes(trained, text):
  tok = trained[2]
  ids = tok.encode(text)
  assert ids.dtype == np.int32 and np.all((ids >= 0) & (ids < VOCAB))
  assert tok.pad_id not in ids and tok.eos_id not in ids
  assert tok.decode(ids) == text
  assert tok.num_bytes(ids) == len(text.encode('utf-8'))
  with_specials = np.concatenate([[tok.eos_id], ids, [tok.pad_id, tok.eos_id]])
  assert tok.decode(with_specials) == text
  assert tok.num_bytes(with_specials) == len(text.encode('utf-8'))


def test_learns_pieces_longer_than_a_byte(trained):
  tok = trained[2]
  text = _corpus()
  assert len(tok.encode(text)) < 0.5 * len(text.encode('utf-8'))


def test_a_continuation_decodes_on_its_own(trained):
  """The sampler prints the prompt, then decode(new ids): no space may be dropped."""
  tok = trained[2]
  text = ' the gate  copies a token\n    return x'
  ids = tok.encode(text)
  for cut in range(len(ids) + 1):
    assert tok.decode(ids[:cut]) + tok.decode(ids[cut:]) == text


def test_stream_decoder_prints_text_as_soon_as_it_is_known(trained):
  tok = trained[2]
  for text in TEXTS:
    ids = tok.encode(text)
    decoder = tok.decoder()
    printed = ''
    for cut, token_id in enumerate(ids, 1):
      printed += decoder.push(token_id)
      so_far = tok.decode(ids[:cut])
      # All but a trailing incomplete character (shown as U+FFFD by decode) is out.
      assert so_far.startswith(printed) and set(so_far[len(printed):]) <= {'\ufffd'}
    assert printed + decoder.finish() == text
  rng = np.random.default_rng(0)
  for _ in range(100):  # Any ids, specials and invalid UTF-8 included: streaming == decode.
    ids = rng.integers(-1, VOCAB + 1, size=rng.integers(0, 12))
    decoder = tok.decoder()
    assert ''.join(decoder.push(i) for i in ids) + decoder.finish() == tok.decode(ids)


def test_trained_once_then_reused(trained):
  config, workdir, tok = trained
  config = ml_collections.ConfigDict(config.to_dict())
  path = workdir / MODEL_FILENAME
  before = path.stat().st_mtime_ns, path.read_bytes()
  config.data.tfds_data_dir = str(workdir / 'no-data')  # Reuse must not read the data.
  again = make_tokenizer(config.data, workdir)
  assert (path.stat().st_mtime_ns, path.read_bytes()) == before
  assert not (workdir / 'no-data').exists()
  text = TEXTS[0] + _corpus()[:500]
  np.testing.assert_array_equal(again.encode(text), tok.encode(text))


@pytest.mark.parametrize('model_type', ['unigram', 'bpe'])
def test_same_data_gives_the_same_model(tmp_path, model_type):
  config = _config(tmp_path, model_type=model_type)
  first = make_tokenizer(config.data, tmp_path / 'a')
  make_tokenizer(config.data, tmp_path / 'b')
  assert (tmp_path / 'a' / MODEL_FILENAME).read_bytes() == (
      tmp_path / 'b' / MODEL_FILENAME).read_bytes()
  assert first.decode(first.encode(TEXTS[2])) == TEXTS[2]


def test_max_train_chars_limits_the_training_text(tmp_path):
  config = _config(tmp_path, max_train_chars=50)  # Too few pieces for VOCAB: it must fail.
  with pytest.raises(DataError, match=r'sentencepiece tokenizer failed: Vocabulary size'):
    make_tokenizer(config.data, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()


def test_model_file(trained, tmp_path):
  config, workdir, tok = trained
  config = ml_collections.ConfigDict(config.to_dict())
  config.data.sentencepiece.model_file = str(workdir / MODEL_FILENAME)
  config.data.sentencepiece.vocab_size = 8000  # The file decides.
  loaded = make_tokenizer(config.data)  # No workdir needed.
  assert loaded.vocab_size == VOCAB
  np.testing.assert_array_equal(loaded.encode(TEXTS[0]), tok.encode(TEXTS[0]))
  config.data.sentencepiece.model_file = str(tmp_path / 'missing.model')
  with pytest.raises(DataError, match='no sentencepiece model at'):
    make_tokenizer(config.data)
  (tmp_path / 'junk.model').write_bytes(b'not a model')
  config.data.sentencepiece.model_file = str(tmp_path / 'junk.model')
  with pytest.raises(DataError, match='is not a sentencepiece model'):
    make_tokenizer(config.data)


def test_workdir_model_of_another_vocab_size(trained):
  config, workdir, _ = trained
  config = ml_collections.ConfigDict(config.to_dict())
  config.data.sentencepiece.vocab_size = VOCAB + 1
  with pytest.raises(DataError, match='has 300 pieces but data.sentencepiece.vocab_size is'):
    make_tokenizer(config.data, workdir)


@pytest.mark.parametrize('change, message', [
    ({}, 'needs a workdir'),
    ({'tokenizer': 'wordpiece'},
     "unknown data.tokenizer 'wordpiece' \\(choose bytes or sentencepiece or huggingface\\)"),
    ({'sentencepiece.model_type': 'char'}, "unknown data.sentencepiece.model_type 'char'"),
    ({'sentencepiece.vocab_size': 100}, 'vocab_size must be an integer of at least 260'),
])
def test_bad_settings(tmp_path, change, message):
  config = _config(tmp_path)
  for key, value in change.items():
    config_lib.set_dotted(config.data, key, value)
  with pytest.raises(DataError, match=message):
    make_tokenizer(config.data)


def test_synthetic_source_is_refused(tmp_path):
  config = _config(tmp_path)
  config.data.source = 'recall'
  with pytest.raises(DataError, match="does not fit the synthetic source 'recall'"):
    make_tokenizer(config.data, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()


def test_bytes_is_still_the_default():
  assert make_tokenizer(load_config('default').data, None).vocab_size == 258
