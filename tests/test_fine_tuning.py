"""Fine-tuning (--config.init_from): a new run starts from another run's parameters,
refuses another model shape before writing anything, and keeps the pretrained
SentencePiece vocabulary."""

import jax
import numpy as np
import pytest

from conftest import copy_config, text_config
from memgpt_jax.data.tokenizer import declared_vocab_size
from memgpt_jax.errors import UserError
from memgpt_jax.training import checkpointing
from memgpt_jax.training import workdir as workdir_lib
from memgpt_jax.training.trainer import train_and_evaluate


def sentencepiece(config):
  """`config` with a SentencePiece vocabulary of 274 pieces, trained on its text."""
  config.data.tokenizer = 'sentencepiece'
  config.data.sentencepiece.vocab_size = 274
  return config


@pytest.fixture(scope='module')
def pretrained_lm(data_dir, tmp_path_factory):
  """A causal LM with its own SentencePiece vocabulary, trained 4 steps on a text file:
  (its config, its workdir)."""
  folder = tmp_path_factory.mktemp('pretrain')
  config = sentencepiece(text_config(data_dir, folder))
  train_and_evaluate(config, folder / 'pretrained')
  return config, folder / 'pretrained'


def test_fine_tuning_starts_from_the_pretrained_parameters_and_vocabulary(
    data_dir, pretrained_lm, tmp_path):
  pretrain, workdir = pretrained_lm
  config = sentencepiece(copy_config(data_dir, segment_len=pretrain.model.segment_len,
                                     num_segments=pretrain.model.num_segments))
  config.init_from = str(workdir)
  config.data.task_metrics = ''  # decoding is tested elsewhere; here the start counts
  config.train.update(num_steps=1, learning_rate=1e-12, eval_every=1, checkpoint_every=1)
  train_and_evaluate(config, tmp_path / 'finetuned')
  abstract = checkpointing.abstract_params(config, declared_vocab_size(config.data))[1]
  before = workdir_lib.load_params(workdir, abstract)
  after = workdir_lib.load_params(tmp_path / 'finetuned', abstract)
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
    np.testing.assert_allclose(a, b, atol=1e-6)  # one step at a negligible learning rate
  assert workdir_lib.saved_config(tmp_path / 'finetuned').data.source == 'copy_summary'
  model_file = 'tokenizer.model'  # the pretrained pieces, not ones trained anew
  assert ((tmp_path / 'finetuned' / model_file).read_bytes() ==
          (workdir / model_file).read_bytes())


def test_fine_tuning_refuses_another_shape_and_writes_nothing(data_dir, pretrained_lm,
                                                              tmp_path):
  _, workdir = pretrained_lm
  config = sentencepiece(copy_config(data_dir))
  config.model.d_model = 64
  config.init_from = str(workdir)
  with pytest.raises(UserError, match='init_from: params/.* has shape'):
    train_and_evaluate(config, tmp_path / 'finetuned')
  assert not (tmp_path / 'finetuned').exists()


def test_an_encoder_decoder_starts_from_a_language_model_on_both_sides(
    data_dir, pretrained_lm, tmp_path):
  """T5's warm start: the decoder is the language model, the encoder its layers; only
  the cross-attention starts fresh."""
  pretrain, workdir = pretrained_lm
  config = sentencepiece(copy_config(data_dir, segment_len=pretrain.model.segment_len,
                                     num_segments=pretrain.model.num_segments))
  config.model.arch = 'encoder_decoder'
  config.model.encoder.num_layers = pretrain.model.num_layers
  config.init_from = str(workdir)
  config.data.task_metrics = ''
  config.train.update(num_steps=1, learning_rate=1e-12, eval_every=1, checkpoint_every=1)
  train_and_evaluate(config, tmp_path / 'finetuned')
  vocab = declared_vocab_size(config.data)
  lm = workdir_lib.load_params(workdir, checkpointing.abstract_params(pretrain, vocab)[1])
  tuned = workdir_lib.load_params(tmp_path / 'finetuned',
                                  checkpointing.abstract_params(config, vocab)[1])
  close = lambda a, b: jax.tree.map(
      lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6), a, b)
  close(lm, workdir_lib.decoder_only_part(tuned))
  for name, tree in tuned['encoder'].items():
    close(lm[name], tree)
  assert 'cross_attention' in tuned['blocks_0']
