"""Task metrics against small cases worked out by hand."""

import math

import pytest

from memgpt_jax.text_metrics import bleu, exact_match, rouge, task_metrics


def test_rouge_of_a_one_word_substitution():
  # the cat sat on the mat / the cat lay on the mat, 6 tokens each.
  # unigrams shared: the x2, cat, on, mat = 5 -> P = R = F = 5/6
  # bigrams shared: 'the cat', 'on the', 'the mat' = 3 of 5 each -> F = 3/5
  # LCS: the cat on the mat = 5 -> F = 5/6
  scores = rouge(['the cat sat on the mat'], ['the cat lay on the mat'])
  assert scores == pytest.approx({'rouge1': 500 / 6, 'rouge2': 60.0, 'rougeL': 500 / 6})


def test_rouge_f_measure_of_unequal_lengths_and_clipped_counts():
  # a b c / a b c d e: overlap 3, P = 3/3, R = 3/5 -> F = 2 * 0.6 / 1.6 = 0.75
  assert rouge(['a b c'], ['a b c d e'])['rouge1'] == pytest.approx(75.0)
  # the x4 / the cat: 'the' counts min(4, 1) = 1, P = 1/4, R = 1/2 -> F = (1/4) / (3/4) = 1/3
  assert rouge(['the the the the'], ['the cat'])['rouge1'] == pytest.approx(100 / 3)


def test_rouge_l_sees_order_with_gaps_rouge_2_only_adjacent_pairs():
  # a x b y c / a b c: no shared bigram; LCS a b c = 3, P = 3/5, R = 1 -> F = 0.75
  scores = rouge(['a x b y c'], ['a b c'])
  assert scores['rouge2'] == 0.0
  assert scores['rougeL'] == pytest.approx(75.0)
  # c b a / a b c: same words (ROUGE-1 = 100), LCS of length 1 -> F = 1/3
  scores = rouge(['c b a'], ['a b c'])
  assert scores == pytest.approx({'rouge1': 100.0, 'rouge2': 0.0, 'rougeL': 100 / 3})


def test_rouge_is_a_mean_over_examples_with_identical_100_disjoint_0_empty_0():
  assert rouge(['same words here'], ['same words here']) == pytest.approx(
      {'rouge1': 100.0, 'rouge2': 100.0, 'rougeL': 100.0})
  assert rouge(['alpha beta'], ['gamma delta']) == {'rouge1': 0.0, 'rouge2': 0.0,
                                                     'rougeL': 0.0}
  assert rouge(['', 'x'], ['x', '']) == {'rouge1': 0.0, 'rouge2': 0.0, 'rougeL': 0.0}
  assert rouge(['a b', 'a b'], ['a b', 'c d'])['rouge1'] == pytest.approx(50.0)


def test_rouge_of_two_sentences_with_case_punctuation_and_reordering():
  # reference: the cat sat on the mat it was happy (9 tokens)
  # prediction: happy a cat sat on a mat (7 tokens)
  # unigrams shared: cat, sat, on, mat, happy = 5 -> F = 2 * 5 / (7 + 9) = 5/8
  # bigrams shared: 'cat sat', 'sat on' = 2 of 6 and 8 -> F = 2 * 2 / (6 + 8) = 2/7
  # LCS: cat sat on mat = 4 ('happy' ends the reference) -> F = 2 * 4 / (7 + 9) = 1/2
  scores = rouge(['Happy, a cat sat on a mat.'], ['The cat sat on the mat. It was happy.'])
  assert scores == pytest.approx({'rouge1': 62.5, 'rouge2': 100 * 2 / 7, 'rougeL': 50.0})


def test_rouge_tokens_are_lowercased_ascii_alphanumeric_runs_without_stemming():
  # Punctuation separates tokens: it's -> it s; so does a non-ASCII letter: café -> caf.
  scores = rouge(["Hello, World! it's 2-for-1 café"], ['hello world it s 2 for 1 caf'])
  assert scores == pytest.approx({'rouge1': 100.0, 'rouge2': 100.0, 'rougeL': 100.0})
  # No stemmer: 'cats' is not 'cat' (the Porter stemmer would make this 100).
  assert rouge(['cats running'], ['cat run']) == {'rouge1': 0.0, 'rouge2': 0.0,
                                                  'rougeL': 0.0}


def test_bleu_of_identical_and_disjoint_corpora():
  corpus = ['the quick brown fox jumps over the lazy dog', 'a b c d e']
  assert bleu(corpus, corpus) == pytest.approx(100.0)
  assert bleu(['one two three four'], ['five six seven eight']) == 0.0


def test_bleu_matches_hand_computed_values():
  # a b c d e f / a b c d e g: 1..4-gram precisions 5/6, 4/5, 3/4, 2/3, no brevity
  # penalty -> (5/6 * 4/5 * 3/4 * 2/3) ** (1/4) = (1/3) ** (1/4)
  assert bleu(['a b c d e f'], ['a b c d e g']) == pytest.approx(100 * (1 / 3) ** 0.25)
  # Corpus-level: counts summed over both examples -> all precisions 1; 10 predicted
  # tokens for 12 reference ones -> brevity penalty exp(1 - 12/10). (The mean of the
  # sentence scores would be (100 + 100 exp(1 - 6/4)) / 2 = 80.3 instead.)
  assert bleu(['a b c d e f', 'a b c d'], ['a b c d e f', 'a b c d x y']) == pytest.approx(
      100 * math.exp(-0.2))


def test_exact_match_strips_surrounding_whitespace_only():
  assert exact_match([' yes\n', 'no', 'Yes', 'a  b'], ['yes', 'no ', 'yes', 'a b']) == 50.0


def test_task_metrics_by_kind():
  predictions = references = ['the cat sat on the mat']
  assert task_metrics('summarization', predictions, references).keys() == {
      'rouge1', 'rouge2', 'rougeL', 'exact_match'}
  assert task_metrics('translation', predictions, references) == pytest.approx(
      {'bleu': 100.0, 'exact_match': 100.0})
  assert task_metrics('exact_match', predictions, references) == {'exact_match': 100.0}


def test_bad_input_is_refused():
  with pytest.raises(ValueError, match='summarization, translation, exact_match'):
    task_metrics('accuracy', ['a'], ['a'])
  for metric in (rouge, bleu, exact_match):
    with pytest.raises(ValueError, match='2 predictions but 1 references'):
      metric(['a', 'b'], ['a'])
    with pytest.raises(ValueError, match='no predictions'):
      metric([], [])
