"""The baseline is a plain GPT (checked against a reference written here from the same
parameters), and cached decoding reproduces the full forward pass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import VOCAB, forward, full_log_probs, init_params, tiny_model
from memgpt_jax.decode import SEGMENTS_PER_CALL, Decoder, generate, sample_token


def _norm(x, p, cfg):
  if cfg.norm_type == 'rmsnorm':
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + cfg.norm_epsilon) * p['scale']
  centered = x - x.mean(-1, keepdims=True)
  return (centered / np.sqrt((centered ** 2).mean(-1, keepdims=True) + cfg.norm_epsilon)
          * p['scale'] + p['bias'])


def _linear(x, p, spec):
  """x times p's kernel (einsum spec), plus its bias if it has one."""
  return np.einsum(spec, x, p['kernel']) + p.get('bias', 0.0)


def _rope(x, base=10_000.0):  # x [L, H, D]
  length, _, dim = x.shape
  freqs = base ** (-np.arange(dim // 2) / (dim // 2))
  angle = np.arange(length)[:, None] * freqs[None]
  cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
  first, second = x[..., :dim // 2], x[..., dim // 2:]
  return np.concatenate([first * cos - second * sin, second * cos + first * sin], -1)


def _gelu(x):  # flax's default: the tanh approximation
  return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def reference_gpt(params, tokens, cfg):
  """A textbook pre-norm GPT in NumPy, for one sequence [L] -> logits [L, V]."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params['params'])
  embedding = p['embed']['embedding']
  length = len(tokens)
  x = embedding[tokens]
  if cfg.position == 'learned':
    x = x + p['positions']['table'][:length]
  for layer in range(cfg.num_layers):
    block = p[f'blocks_{layer}']
    h = _norm(x, block['attention_norm'], cfg)
    q, k, v = (_linear(h, block['attention'][n], 'ld,dhk->lhk')
               for n in ('query', 'key', 'value'))
    if cfg.position == 'rope':
      q, k = _rope(q), _rope(k)
    scores = np.einsum('qhd,khd->hqk', q, k) / np.sqrt(cfg.head_dim)
    scores = np.where(np.tril(np.ones((length, length), bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    attended = np.einsum('hqk,khd->qhd', weights, v)
    x = x + _linear(attended, block['attention']['out'], 'lhd,hdo->lo')
    h = _norm(x, block['mlp_norm'], cfg)
    mlp = block['mlp']
    if cfg.mlp_type == 'swiglu':
      up = _linear(h, mlp['w1'], 'ld,dm->lm')
      hidden = up / (1 + np.exp(-up)) * _linear(h, mlp['w3'], 'ld,dm->lm')
    else:
      hidden = _gelu(_linear(h, mlp['w1'], 'ld,dm->lm'))
    x = x + _linear(hidden, mlp['w2'], 'lm,md->ld')
  output = embedding.T if cfg.tie_embeddings else p['lm_head']['kernel']
  return _norm(x, p['final_norm'], cfg) @ output


@pytest.mark.parametrize('variant', [
    {},
    # GPT-2's family: learned positions, LayerNorm, GELU, biases everywhere, eps 1e-5.
    {'position': 'learned', 'mlp_type': 'gelu', 'norm_type': 'layernorm', 'bias': 'all',
     'norm_epsilon': 1e-5},
    # Llama's: rotary positions, RMSNorm, SwiGLU, an untied output; Qwen2's qkv biases.
    {'tie_embeddings': False, 'norm_epsilon': 1e-5},
    {'tie_embeddings': False, 'bias': 'qkv'},
])
def test_baseline_equals_reference_gpt(variant):
  model, cfg = tiny_model(**{'memory.enabled': False, 'pointer.enabled': False,
                             'num_segments': 1, **variant})
  params = init_params(model)
  # Biases start at zero: give them values, so that the reference checks they are used.
  params = jax.tree_util.tree_map_with_path(
      lambda path, x: x + 0.1 * jax.random.normal(jax.random.key(len(path)), x.shape)
      if path[-1].key == 'bias' else x, params)
  tokens = jax.random.randint(jax.random.key(0), (2, cfg.seq_len), 0, VOCAB)
  logits = forward(model, params, tokens).vocab_logits.reshape(2, cfg.seq_len, VOCAB)
  for row in range(2):
    expected = reference_gpt(params, np.asarray(tokens[row]), cfg)
    np.testing.assert_allclose(logits[row], expected, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize('chunks', [[1] * 24, [5, 3, 9, 1, 6], [24]])
def test_cached_decoding_matches_full_forward(memgpt, chunks):
  """Feeding tokens in any chunking (one at a time, across segment boundaries)
  reproduces the full forward's next-token distribution at every position."""
  model, params = memgpt
  length = model.cfg.seq_len
  assert sum(chunks) == length == 24
  tokens = jax.random.randint(jax.random.key(1), (2, length), 0, VOCAB)
  expected = full_log_probs(model, params, tokens)
  decoder = Decoder(model, params)
  state = decoder.start(2)
  pieces, offset = [], 0
  for size in chunks:
    log_probs, state = decoder.feed(state, tokens[:, offset:offset + size])
    pieces.append(log_probs)
    offset += size
  np.testing.assert_allclose(jnp.exp(jnp.concatenate(pieces, axis=1)), jnp.exp(expected),
                             atol=1e-5)


def test_prefill_feeds_any_length_as_feed_does(memgpt):
  """A long input through prefill (partly filled segment first, then more whole
  segments than one compiled call takes, then a partial one) leaves the state feed
  leaves: the same last-position distribution, memory, and what follows."""
  model, params = memgpt
  decoder = Decoder(model, params)
  length = (SEGMENTS_PER_CALL + 2) * model.cfg.segment_len + 5
  tokens = np.asarray(jax.random.randint(jax.random.key(2), (2, length + 6), 0, VOCAB))
  _, start = decoder.feed(decoder.start(2), tokens[:, :3])
  fed, fed_state = decoder.feed(start, tokens[:, 3:length])
  last, state = decoder.prefill(start, tokens[:, 3:length])
  assert last.shape == (2, VOCAB) and state.position == fed_state.position
  np.testing.assert_allclose(last, fed[:, -1], atol=2e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5), state.memory,
               fed_state.memory)
  after, _ = decoder.feed(state, tokens[:, length:])
  expected, _ = decoder.feed(fed_state, tokens[:, length:])
  np.testing.assert_allclose(after, expected, atol=2e-5)


def test_decoding_runs_past_the_training_length(memgpt):
  model, params = memgpt
  decoder = Decoder(model, params)
  prompt = np.ones((3, 5), np.int32)
  steps = list(generate(decoder, prompt, max_new_tokens=2 * model.cfg.seq_len,
                        rng=jax.random.key(0), temperature=1.0, top_k=10, top_p=0.9))
  assert len(steps) == 2 * model.cfg.seq_len
  tokens = np.stack(steps, axis=1)
  assert tokens.shape == (3, 2 * model.cfg.seq_len)
  assert tokens.min() >= 0 and tokens.max() < VOCAB
  # Same seed, same samples; greedy is deterministic and equal across the batch.
  again = np.stack(list(generate(decoder, prompt, 2 * model.cfg.seq_len, jax.random.key(0),
                                 temperature=1.0, top_k=10, top_p=0.9)), axis=1)
  np.testing.assert_array_equal(tokens, again)
  greedy = np.stack(list(generate(decoder, prompt, 6, jax.random.key(5), temperature=0.0)),
                    axis=1)
  assert (greedy == greedy[:1]).all()


@pytest.mark.parametrize('top_k,top_p,allowed', [
    (0, 1.0, {0, 1, 2, 3}),  # no filter
    (0, 0.7, {0, 1}),  # 0.5 + 0.3 reaches 0.7; 0.5 alone does not
    (0, 0.5, {0}),
    (3, 1.0, {0, 1, 2}),
    (3, 0.85, {0, 1, 2}),
])
def test_sampling_filters_keep_exactly_their_tokens(top_k, top_p, allowed):
  """top_k keeps the k most likely tokens; the nucleus keeps the fewest most likely
  tokens whose mass reaches top_p; top_k 0 and top_p 1 keep every token."""
  log_probs = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]] * 4096))
  tokens = sample_token(jax.random.key(0), log_probs, 1.0, top_k, top_p)
  assert set(np.asarray(tokens).tolist()) == allowed


@pytest.mark.parametrize('chunk_size', [1, 5])
def test_compiled_decoding_loop_matches_the_full_forward_pass(memgpt, chunk_size):
  """Greedy chunks from the compiled loop, across segment ends (memory writes) and
  chunk ends: each token is the full forward pass's argmax over prompt + tokens, and
  the loop's log-probs after each chunk are the full pass's at that position."""
  model, params = memgpt
  prompt = jax.random.randint(jax.random.key(9), (2, 3), 0, VOCAB)
  decoder = Decoder(model, params)
  log_probs, state = decoder.feed(decoder.start(2), prompt)
  log_probs, done = log_probs[:, -1], jnp.zeros(2, bool)
  tokens, after_chunks = [], []
  while sum(t.shape[1] for t in tokens) + chunk_size <= 2 * model.cfg.seq_len - 3:
    chunk, log_probs, done, state = decoder.sample_and_feed(
        state, log_probs, done, jax.random.key(0), 0, chunk_size, 0.0, 0, 1.0, None)
    tokens.append(np.asarray(chunk))
    after_chunks.append(log_probs)
  tokens = np.concatenate(tokens, axis=1)
  row = jnp.concatenate([prompt, tokens], axis=1)
  row = jnp.pad(row, ((0, 0), (0, -row.shape[1] % model.cfg.seq_len)))
  full = full_log_probs(model, params, row).reshape(2, row.shape[1], -1)
  np.testing.assert_array_equal(tokens, np.asarray(jnp.argmax(full, -1))[:, 2:2 + tokens.shape[1]])
  for index, log_probs in enumerate(after_chunks):
    position = 3 + (index + 1) * chunk_size - 1  # the chunk's last token
    np.testing.assert_allclose(log_probs, full[:, position], atol=2e-6)
