"""Packed documents and seq2seq prefixes (DESIGN 2): nothing crosses a document
boundary (attention, memory, pointer), the prefix is bidirectional, the pointer copies
input tokens, and cached decoding with a prefix reproduces the full forward pass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import VOCAB, forward, full_log_probs as log_probs, init_params, tiny_model
from memgpt_jax import losses
from memgpt_jax.decode import Decoder, generate


def tokens_for(model, seed=0):
  return jax.random.randint(jax.random.key(seed), (2, model.cfg.seq_len), 0, VOCAB)


def test_no_information_crosses_a_document_boundary(memgpt):
  """Row of 24 tokens (3 segments of 8): document 1 = positions 0..10, document 2 =
  11..23, so document 2 starts mid-segment and spans a memory write and the
  pointer cache. Editing document 1 anywhere leaves document 2's outputs unchanged;
  editing inside document 2 changes its later outputs in later segments (so the test
  can fail)."""
  model, params = memgpt
  tokens = tokens_for(model)
  boundary = 11
  doc_ids = jnp.where(jnp.arange(model.cfg.seq_len) < boundary, 1, 2)[None].repeat(2, 0)
  before = log_probs(model, params, tokens, doc_ids)
  for edit_at in (0, 7, boundary - 1):
    edited = tokens.at[:, edit_at].set((tokens[:, edit_at] + 1) % VOCAB)
    after = log_probs(model, params, edited, doc_ids)
    np.testing.assert_allclose(before[:, boundary:], after[:, boundary:], atol=1e-6)
    assert float(jnp.abs(before[:, edit_at:boundary] - after[:, edit_at:boundary]).max()) > 1e-4
  edited = tokens.at[:, 12].set((tokens[:, 12] + 1) % VOCAB)
  diff = jnp.abs(log_probs(model, params, edited, doc_ids) - before).max(axis=(0, 2))
  assert float(diff[16:].min()) > 1e-6  # later segments see it (memory, pointer cache)


def test_a_document_alone_in_its_segment_is_unaffected_by_packing(memgpt):
  """The memory resets at a document boundary: document 2 filling segments 1 and 2
  behaves as if document 1 (segment 0) had been anything at all."""
  model, params = memgpt
  tokens = tokens_for(model)
  segment = model.cfg.segment_len
  doc_ids = jnp.where(jnp.arange(model.cfg.seq_len) < segment, 1, 2)[None].repeat(2, 0)
  other = tokens.at[:, :segment].set(tokens_for(model, seed=5)[:, :segment])
  np.testing.assert_allclose(log_probs(model, params, tokens, doc_ids)[:, segment:],
                             log_probs(model, params, other, doc_ids)[:, segment:], atol=1e-6)


@pytest.mark.parametrize('bidirectional', [True, False])
def test_prefix_attends_both_ways_and_targets_stay_causal(bidirectional):
  model, _ = tiny_model(bidirectional_prefix=bidirectional)
  params = init_params(model)
  tokens = tokens_for(model)
  prefix = jnp.arange(model.cfg.seq_len) < 6  # inputs 0..5 in segment 0
  prefix = prefix[None].repeat(2, 0)
  before = log_probs(model, params, tokens, prefix=prefix)
  # An edit of the last input token reaches earlier input positions only if bidirectional.
  edited = tokens.at[:, 5].set((tokens[:, 5] + 1) % VOCAB)
  after = log_probs(model, params, edited, prefix=prefix)
  earlier_change = float(jnp.abs(before[:, :5] - after[:, :5]).max())
  assert (earlier_change > 1e-4) == bidirectional
  # Targets: an edit at position 10 never reaches positions before it.
  edited = tokens.at[:, 10].set((tokens[:, 10] + 1) % VOCAB)
  np.testing.assert_allclose(before[:, :10],
                             log_probs(model, params, edited, prefix=prefix)[:, :10], atol=1e-6)


@pytest.mark.parametrize('copy_inputs', [True, False])
def test_pointer_proposes_input_tokens_themselves(copy_inputs):
  model, _ = tiny_model(**{'pointer.copy_inputs': copy_inputs})
  params = init_params(model)
  tokens = tokens_for(model)
  prefix = (jnp.arange(model.cfg.seq_len) < 6)[None].repeat(2, 0)
  output = forward(model, params, tokens, None, prefix)
  proposals = output.proposals[:, 0, model.cfg.pointer_cache_len:]  # segment 0's candidates
  segment = tokens[:, :model.cfg.segment_len]
  inputs_proposal = segment[:, :6] if copy_inputs else segment[:, 1:7]
  np.testing.assert_array_equal(proposals[:, :6], inputs_proposal)
  np.testing.assert_array_equal(proposals[:, 6:-1], segment[:, 7:])  # targets: successors


@pytest.mark.parametrize('prefix_len', [5, 13])
def test_cached_decoding_with_a_prefix_matches_full_forward(memgpt, prefix_len):
  """Inputs fed in one call (one chunk per segment), then the targets one token at a
  time: the same distributions as the full forward with the prefix flags."""
  model, params = memgpt
  tokens = tokens_for(model, seed=3)
  prefix = (jnp.arange(model.cfg.seq_len) < prefix_len)[None].repeat(2, 0)
  expected = log_probs(model, params, tokens, prefix=prefix)
  decoder = Decoder(model, params)
  pieces, state = [], decoder.start(2)
  out, state = decoder.feed(state, tokens[:, :prefix_len], prefix=True)
  pieces.append(out)
  for position in range(prefix_len, model.cfg.seq_len):
    out, state = decoder.feed(state, tokens[:, position:position + 1])
    pieces.append(out)
  np.testing.assert_allclose(jnp.exp(jnp.concatenate(pieces, axis=1)), jnp.exp(expected),
                             atol=1e-5)


def test_left_padding_does_not_change_greedy_targets():
  """generate() pads shorter prompts on the left with -1: padding is a document of its
  own that nothing attends to. In one segment (positions are relative under RoPE) a
  padded row decodes exactly as it does alone."""
  model, _ = tiny_model(segment_len=32, num_segments=1)
  params = init_params(model)
  decoder = Decoder(model, params)
  short = np.asarray(tokens_for(model, seed=4)[:1, :5])
  alone = np.stack(list(generate(decoder, short, 8, jax.random.key(0), temperature=0.0,
                                 prefix=True)), axis=1)
  padded = np.concatenate([np.full((1, 4), -1, np.int32), short], axis=1)
  batch = np.concatenate([padded, np.asarray(tokens_for(model, seed=6)[:1, :9])], axis=0)
  together = np.stack(list(generate(decoder, batch, 8, jax.random.key(0), temperature=0.0,
                                    prefix=True)), axis=1)
  np.testing.assert_array_equal(together[0], alone[0])


@pytest.mark.parametrize('memgpt', ['delta'], indirect=True)  # pointer only
def test_pointer_attention_by_absolute_position(memgpt):
  """Segment k's candidates land at positions k*T - P + c: every query's copy mass
  (1 - gate) sits on earlier positions, within reach of the cache."""
  model, params = memgpt
  output = forward(model, params, tokens_for(model))
  attn = losses.pointer_attention(output)  # [B, N, N]
  n, length = model.cfg.seq_len, model.cfg.segment_len
  np.testing.assert_allclose(attn.sum(-1), 1 - jnp.exp(output.log_gate).reshape(2, n),
                             atol=1e-5)
  query, key = np.arange(n)[:, None], np.arange(n)[None, :]
  reach = (key < query) & (key >= query // length * length - model.cfg.pointer_cache_len)
  assert float(jnp.abs(jnp.where(reach, 0.0, attn)).max()) < 1e-6
  assert float(attn[:, reach].min()) > 0.0


def test_coverage_loss_counts_repeated_attention_to_inputs():
  """Two target positions (t = 2, 3) both point at input 0 with 0.75, then 0.5:
  coverage at t=3 is 0.75, so the loss is (min(0.75, 0) + min(0.5, 0.75)) / 2 = 0.25.
  Attention to a non-input (position 1) costs nothing."""
  attn = np.full((1, 1, 4, 1, 4), 1e-30)  # [B, K, T, heads, C], no cache
  attn[0, 0, 2, 0, :2] = [0.75, 0.25]
  attn[0, 0, 3, 0, :2] = [0.5, 0.5]
  output = losses.SegmentOutput(vocab_logits=jnp.zeros((1, 1, 4, 3)),
                                log_attn=jnp.log(jnp.asarray(attn)))
  mask = jnp.array([[0.0, 0.0, 1.0, 1.0]])
  prefix = jnp.array([[True, False, False, False]])
  np.testing.assert_allclose(losses.coverage_loss(output, mask, prefix), 0.25, rtol=1e-6)


def test_coverage_loss_of_an_encoder_decoder_counts_its_source():
  """The same case with the inputs an encoder-decoder's source: its 2 source
  candidates come first, then the target's own, which cost nothing."""
  attn = np.full((1, 1, 4, 1, 2 + 4), 1e-30)  # [B, K, T, heads, S + C]
  attn[0, 0, 2, 0, [0, 3]] = [0.75, 0.25]
  attn[0, 0, 3, 0, [0, 4]] = [0.5, 0.5]
  output = losses.SegmentOutput(vocab_logits=jnp.zeros((1, 1, 4, 3)),
                                log_attn=jnp.log(jnp.asarray(attn)), num_sources=2)
  mask = jnp.array([[0.0, 0.0, 1.0, 1.0]])
  no_prefix = jnp.zeros((1, 4), bool)
  np.testing.assert_allclose(losses.coverage_loss(output, mask, no_prefix), 0.25, rtol=1e-6)
  np.testing.assert_allclose(losses.pointer_attention(output)[0, 2:, :2], [[0.0, 0.25],
                                                                         [0.0, 0.0]],
                             atol=1e-6)
