"""The encoder-decoder option (model.arch='encoder_decoder'): what each side may see,
the source read whole through the encoder's memory, decoding = the full forward pass,
and its rows (training and decoding through the same programs: tests/test_seq2seq.py)."""

import json

from flax.traverse_util import flatten_dict
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import copy_config, init_params, random_tokens, tiny_model, train_losses
from memgpt_jax import config_lib
from memgpt_jax.data import pipeline
from memgpt_jax.data.tokenizer import ByteTokenizer
from memgpt_jax.decode import Decoder
from memgpt_jax.errors import ConfigError
from memgpt_jax.model.pointer import source_proposals
from memgpt_jax.model.transformer import MemGPT
from memgpt_jax.training.evaluation import Evaluator
from memgpt_jax.training.optimizer import make_optimizer
from memgpt_jax.training.partitioner import make_partitioner
from memgpt_jax.training.trainer import train_and_evaluate
from memgpt_jax import losses

TOK = ByteTokenizer()
T = 8  # configs/tiny.py's segment length


def encoder_decoder(cross_attention: str = 'all', **overrides):
  """The tiny model as an encoder-decoder of two layers a side, sources of 3 segments."""
  model, _ = tiny_model(**{'arch': 'encoder_decoder', 'num_layers': 2, 'encoder.num_layers': 2,
                           'encoder.num_segments': 3,
                           'encoder.cross_attention': cross_attention} | overrides)
  return model, init_params(model)


def log_probs(model, params, targets, sources, doc_ids=None, source_docs=None):
  """[B, N, V] next-token log-probs of the full forward pass."""
  output = jax.jit(model.apply)(params, targets, doc_ids, None, sources, source_docs)
  return losses.next_token_log_probs(output)


@pytest.mark.parametrize('cross_attention', ['all', 'last_segment'])
def test_decoding_token_by_token_equals_the_full_forward_pass(cross_attention):
  model, params = encoder_decoder(cross_attention)
  targets, sources = random_tokens((2, 2 * T), 1), random_tokens((2, 3 * T), 2)
  expected = log_probs(model, params, targets, sources)
  decoder = Decoder(model, params)
  state = decoder.start(2, np.asarray(sources))
  steps = []
  for index in range(targets.shape[1]):
    step, state = decoder.feed(state, targets[:, index:index + 1])
    steps.append(step)
  np.testing.assert_allclose(jnp.concatenate(steps, 1), expected, atol=2e-5)
  last, _ = decoder.prefill(decoder.start(2, np.asarray(sources)), np.asarray(targets))
  np.testing.assert_allclose(last, expected[:, -1], atol=2e-5)


def test_pointing_at_a_source_token_copies_it_or_the_next_of_its_own_example():
  tokens = jnp.array([[5, 6, 7, 8, 9, 0]])
  docs = jnp.array([[1, 1, 1, 2, 2, 0]])  # two examples, then padding
  np.testing.assert_array_equal(source_proposals(tokens, docs, True), tokens)
  np.testing.assert_array_equal(source_proposals(tokens, docs, False), [[6, 7, 0, 9, 0, 0]])


def test_the_decoder_is_causal_and_reads_its_own_examples_source_only():
  model, params = encoder_decoder()
  targets, sources = random_tokens((1, 2 * T), 1), random_tokens((1, 3 * T), 2)
  # Two examples side by side: targets 1 | 2 at position 5, sources 1 | 2 at 11.
  doc_ids = jnp.where(jnp.arange(2 * T) < 5, 1, 2)[None]
  source_docs = jnp.where(jnp.arange(3 * T) < 11, 1, 2)[None]
  base = log_probs(model, params, targets, sources, doc_ids, source_docs)
  later_target = targets.at[0, 9].set((targets[0, 9] + 1) % 64)
  changed = log_probs(model, params, later_target, sources, doc_ids, source_docs)
  np.testing.assert_array_equal(changed[:, :9], base[:, :9])
  assert not np.allclose(changed[:, 9:], base[:, 9:])
  other_source = sources.at[0, 20].set((sources[0, 20] + 1) % 64)  # example 2's
  changed = log_probs(model, params, targets, other_source, doc_ids, source_docs)
  np.testing.assert_array_equal(changed[:, :5], base[:, :5])
  assert not np.allclose(changed[:, 5:], base[:, 5:])


def test_the_encoder_reads_both_ways_within_a_segment_and_forward_through_memory():
  model, params = encoder_decoder()
  sources = random_tokens((1, 3 * T), 2)
  encode = jax.jit(lambda s: model.apply(params, s, method=type(model).encode)[0])
  encoded_keys = lambda s: np.asarray(encode(s).keys[0])  # [B, H, S, D]
  base = encoded_keys(sources)
  changed = encoded_keys(sources.at[0, 2 * T - 1].set((sources[0, 2 * T - 1] + 1) % 64))
  np.testing.assert_array_equal(changed[..., :T, :], base[..., :T, :])  # earlier segment
  assert not np.allclose(changed[..., T, :], base[..., T, :])  # its segment's first token
  assert not np.allclose(changed[..., 2 * T:, :], base[..., 2 * T:, :])  # through memory


@pytest.mark.parametrize('memory', [True, False])
def test_last_segment_cross_attention_sees_the_rest_of_the_source_through_memory_only(memory):
  """With cross-attention to the source's last segment only, the decoder learns of the
  earlier segments through the encoder's final memory, which it starts from: with the
  memory off nothing of them reaches it (the leak check)."""
  model, params = encoder_decoder('last_segment', **{'memory.enabled': memory})
  targets, sources = random_tokens((1, 2 * T), 1), random_tokens((1, 3 * T), 2)
  base = log_probs(model, params, targets, sources)
  changed = log_probs(model, params, targets, sources.at[0, 0].set((sources[0, 0] + 1) % 64))
  assert np.allclose(changed, base) != memory


def test_an_lm_checkpoints_decoder_names_are_the_encoder_decoders():
  """The decoder keeps a decoder-only model's parameter names (a pretrained LM starts
  it); the encoder shares the embedding table."""
  model, params = encoder_decoder()
  lm, _ = tiny_model(num_layers=2)
  flat = lambda tree: {path: np.shape(leaf) for path, leaf in flatten_dict(tree).items()}
  lm_shapes, shapes = flat(init_params(lm)['params']), flat(params['params'])
  assert lm_shapes.items() <= shapes.items()
  assert not any(path[:2] == ('encoder', 'embed') for path in shapes)


def pair_config(data_dir, cross_attention='all'):
  config = copy_config(data_dir, segment_len=64, num_segments=2)
  config.model.arch = 'encoder_decoder'
  config.model.encoder.num_segments = 4
  config.model.encoder.cross_attention = cross_attention
  return config


def test_pairs_are_packed_side_by_side_and_resume_exactly(data_dir):
  config = pair_config(data_dir)
  it = pipeline.make_train_iterator(config, TOK, 0, 1)
  batch = next(it)
  assert batch['encoder_inputs'].shape == (4, 256) and batch['inputs'].shape == (4, 128)
  assert not batch['prefix'].any()
  for row in range(4):
    docs = set(np.unique(batch['doc_ids'][row])) - {0}
    assert docs == set(np.unique(batch['encoder_doc_ids'][row])) - {0}
    for doc in docs:
      source = batch['encoder_inputs'][row][batch['encoder_doc_ids'][row] == doc]
      target = batch['inputs'][row][batch['doc_ids'][row] == doc]
      assert source[-1] == target[0] == TOK.eos_id  # the source's eos starts its target
      trained = batch['mask'][row][batch['doc_ids'][row] == doc]
      assert trained[:-1].all()  # every target token, the closing eos too
  state = json.loads(json.dumps(it.get_state()))
  expected = next(it)
  resumed = pipeline.make_train_iterator(config, TOK, 0, 1)
  resumed.set_state(state)
  for key, value in next(resumed).items():
    np.testing.assert_array_equal(value, expected[key])


def test_last_segment_rows_hold_one_example_whose_source_ends_the_row(data_dir):
  batch = next(pipeline.make_train_iterator(pair_config(data_dir, 'last_segment'), TOK, 0, 1))
  assert set(np.unique(batch['doc_ids'])) == {0, 1}
  np.testing.assert_array_equal(batch['encoder_inputs'][:, -1], TOK.eos_id)
  np.testing.assert_array_equal(batch['encoder_doc_ids'][:, -1], 1)


@pytest.mark.parametrize('setting, value, message', [
    ('model.scan_layers', True, 'runs its layers unrolled'),
    ('model.memory.layers', '0,3', 'names a layer the encoder lacks'),
    ('model.encoder.cross_attention', 'nearest', "is not one of all, last_segment"),
    ('data.source', 'pystdlib', 'needs data.inputs_key and targets_key'),
])
def test_bad_encoder_decoder_settings_are_refused_in_one_line(data_dir, setting, value,
                                                               message):
  config = pair_config(data_dir)
  config.model.num_layers = 4
  config.model.encoder.num_layers = 2
  config_lib.set_dotted(config, setting, value)
  if setting == 'data.source':
    config.data.inputs_key = ''
  with pytest.raises(ConfigError, match=message) as raised:
    config_lib.validate(config, TOK.vocab_size)
  assert '\n' not in str(raised.value)


def test_evaluation_scores_the_targets_given_their_sources(data_dir):
  """The evaluation's loss is the mean over the eval split's targets of -log p under
  the full forward pass from each row's sources."""
  config = pair_config(data_dir)
  cfg = config_lib.validate(config, TOK.vocab_size)
  model = MemGPT(cfg)
  partitioner = make_partitioner(config, model, make_optimizer(config.train))
  params = jax.device_get(partitioner.init_state().params)
  nll, tokens = 0.0, 0.0
  forward = jax.jit(model.apply)
  for batch in pipeline.make_eval_iterator(config, TOK):
    output = forward({'params': params}, batch['inputs'], batch['doc_ids'], None,
                     batch['encoder_inputs'], batch['encoder_doc_ids'])
    log_probs = losses.token_log_probs(output, batch['targets']).reshape(batch['mask'].shape)
    nll -= float((log_probs * batch['mask']).sum())
    tokens += batch['mask'].sum()
  metrics = Evaluator(config, TOK, model, partitioner)(partitioner.init_state().params)
  assert metrics['loss'] == pytest.approx(nll / tokens, rel=1e-5)


def test_stop_and_resume_continues_exactly(data_dir, tmp_path):
  def run(workdir, **train):
    config = pair_config(data_dir)
    config.data.task_metrics = ''
    config.train.update(checkpoint_every=2, log_every=1, **train)
    train_and_evaluate(config, workdir)
    return train_losses(workdir)
  expected = run(tmp_path / 'uninterrupted')
  assert sorted(run(tmp_path / 'resumed', stop_at_step=2)) == [1, 2]
  resumed = run(tmp_path / 'resumed')
  assert sorted(resumed) == sorted(expected) == [1, 2, 3, 4]
  np.testing.assert_allclose([resumed[s] for s in sorted(resumed)],
                             [expected[s] for s in sorted(expected)], rtol=1e-6)
