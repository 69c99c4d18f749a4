"""Bits per byte of evaluation against cases worked out by hand: the nats of the
masked target tokens, in bits, over the UTF-8 bytes those tokens stand for."""

import io
import math

import numpy as np
import pytest
import sentencepiece

from memgpt_jax import losses
from memgpt_jax.data.tokenizer import ByteTokenizer, SentencePieceTokenizer
from memgpt_jax.model.state import SegmentOutput
from memgpt_jax.training.evaluation import scored_bytes, split_metrics


def _logits(targets: np.ndarray, target_probs: np.ndarray, vocab_size: int) -> np.ndarray:
  """[B, 1, T, V] logits under which each target has its probability p: log p for
  the target, log((1 - p) / (V - 1)) for every other id."""
  rest = np.log((1 - target_probs) / (vocab_size - 1))
  logits = np.repeat(rest[..., None], vocab_size, axis=-1)
  np.put_along_axis(logits, targets[..., None], np.log(target_probs)[..., None], axis=-1)
  return logits[:, None].astype(np.float32)


def _evaluate(tokenizer, batches: list[dict[str, np.ndarray]]) -> dict[str, float]:
  """A split's metrics as evaluation makes them (its model standing in: logits that give
  each target its 'target_probs'): eval_sums and scored bytes summed over the batches."""
  totals, num_bytes = {}, 0
  for batch in batches:
    output = SegmentOutput(vocab_logits=_logits(batch['targets'], batch['target_probs'],
                                                tokenizer.vocab_size))
    sums = losses.eval_sums(output, batch['targets'], batch['mask'])
    totals = {k: totals.get(k, 0.0) + float(v) for k, v in sums.items()}
    num_bytes += scored_bytes(tokenizer, batch)
  return split_metrics(totals, num_bytes)


def _batch(targets, target_probs, mask) -> dict[str, np.ndarray]:
  return {'targets': np.array([targets], np.int32),
          'target_probs': np.array([target_probs], np.float64),
          'mask': np.array([mask], np.int32)}


def test_bits_per_byte_of_byte_tokens_sums_over_batches_before_dividing():
  tok = ByteTokenizer()
  # 'hé' then the document's end: h, and é as its two UTF-8 bytes 0xC3 0xA9, eos; the
  # last position ('x') is masked out.
  #   -log2 p: h 1/2 -> 1, 0xC3 1/4 -> 2, 0xA9 1/2 -> 1, eos 1/8 -> 3 = 7 bits
  #   bytes: 1 + 1 + 1 + 0 (eos stands for none) = 3
  first = _batch([104, 0xC3, 0xA9, tok.eos_id, 120], [1/2, 1/4, 1/2, 1/8, 1/2],
                 [1, 1, 1, 1, 0])
  # 'abcde', each at 1/2: 5 bits over 5 bytes.
  second = _batch([97, 98, 99, 100, 101], [1/2] * 5, [1] * 5)
  metrics = _evaluate(tok, [first, second])
  # (7 + 5) bits / (3 + 5) bytes = 1.5; the mean of the batches' would be
  # (7/3 + 5/5) / 2 = 5/3, and bits per token 12/9.
  assert metrics['bits_per_byte'] == pytest.approx(1.5, rel=1e-5)
  assert metrics['loss'] == pytest.approx(12 * math.log(2) / 9, rel=1e-5)  # nats/token


def test_bits_per_byte_counts_every_byte_of_a_sentencepiece_token():
  model = io.BytesIO()
  sentencepiece.SentencePieceTrainer.train(
      sentence_iterator=iter(['ab ba ab', 'ba ab']), model_writer=model, model_type='bpe',
      vocab_size=263, hard_vocab_limit=False, user_defined_symbols=['héllo'],
      pad_id=0, eos_id=1, unk_id=2, bos_id=-1, byte_fallback=True, add_dummy_prefix=False,
      minloglevel=2)
  tok = SentencePieceTokenizer(model.getvalue())
  [hello], [a], [b] = tok.encode('héllo'), tok.encode('a'), tok.encode('b')
  # -log2 p: 'héllo' 1/8 -> 3, 'a' 1/2 -> 1, 'b' 1/2 -> 1, eos 1/4 -> 2 = 7 bits
  # bytes: 'héllo' 6 (é is 2), 'a' 1, 'b' 1, eos 0 = 8; the masked 'héllo' counts neither
  # -> 7 / 8 = 0.875 (per token it would be 7 / 4).
  batch = _batch([hello, a, b, tok.eos_id, hello], [1/8, 1/2, 1/2, 1/4, 1/2],
                 [1, 1, 1, 1, 0])
  assert _evaluate(tok, [batch])['bits_per_byte'] == pytest.approx(7 / 8, rel=1e-5)
