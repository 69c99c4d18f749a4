"""Task metrics over decoded text: ROUGE, BLEU and exact match, in percent (0..100).

ROUGE is our own, scored the way the reference `rouge_score` package scores by
default (its tokenizer, no stemming, F-measure), so numbers compare with papers
that used it; BLEU is sacrebleu's corpus BLEU (13a tokens, exp smoothing), whose
signature papers report. Every function takes one reference per prediction.
"""

import collections
import re
from collections.abc import Sequence

import sacrebleu

KINDS = ('summarization', 'translation', 'exact_match')


def _check(predictions: Sequence[str], references: Sequence[str]):
  if len(predictions) != len(references):
    raise ValueError(f'{len(predictions)} predictions but {len(references)} references')
  if not predictions:
    raise ValueError('no predictions to score')


def tokenize(text: str) -> list[str]:
  """rouge_score's default tokens: lowercased runs of [a-z0-9]; anything else
  (punctuation, and non-ASCII letters too, as there) separates them."""
  return re.sub(r'[^a-z0-9]+', ' ', text.lower()).split()


def _ngrams(tokens: list[str], n: int) -> collections.Counter:
  return collections.Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _f_measure(overlap: int, predicted: int, reference: int) -> float:
  if not overlap:
    return 0.0
  precision, recall = overlap / predicted, overlap / reference
  return 2 * precision * recall / (precision + recall)


def _rouge_n(prediction: list[str], reference: list[str], n: int) -> float:
  """F-measure of the n-grams both share, each counted at most as often as in either."""
  pred, ref = _ngrams(prediction, n), _ngrams(reference, n)
  return _f_measure(sum((pred & ref).values()), sum(pred.values()), sum(ref.values()))


def _lcs_length(a: list[str], b: list[str]) -> int:
  previous = [0] * (len(b) + 1)
  for x in a:
    current = [0]
    for j, y in enumerate(b):
      current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
    previous = current
  return previous[-1]


def _rouge_l(prediction: list[str], reference: list[str]) -> float:
  """F-measure of the longest common subsequence: in-order matches, gaps allowed."""
  return _f_measure(_lcs_length(prediction, reference), len(prediction), len(reference))


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
  """Mean ROUGE-1, ROUGE-2 and ROUGE-L F-measures over the examples; an empty
  prediction or reference scores 0."""
  _check(predictions, references)
  totals = {'rouge1': 0.0, 'rouge2': 0.0, 'rougeL': 0.0}
  for prediction, reference in zip(predictions, references):
    pred, ref = tokenize(prediction), tokenize(reference)
    totals['rouge1'] += _rouge_n(pred, ref, 1)
    totals['rouge2'] += _rouge_n(pred, ref, 2)
    totals['rougeL'] += _rouge_l(pred, ref)
  return {k: 100 * v / len(predictions) for k, v in totals.items()}


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
  """Corpus BLEU: n-gram counts summed over all examples before the precisions and
  the brevity penalty, so it is not the mean of sentence BLEUs."""
  _check(predictions, references)
  return sacrebleu.corpus_bleu(list(predictions), [list(references)]).score


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
  """Share of predictions equal to their reference but for surrounding whitespace."""
  _check(predictions, references)
  hits = sum(p.strip() == r.strip() for p, r in zip(predictions, references))
  return 100 * hits / len(predictions)


def task_metrics(kind: str, predictions: Sequence[str],
                 references: Sequence[str]) -> dict[str, float]:
  """The metrics a task is judged by, by name."""
  if kind == 'summarization':
    return rouge(predictions, references) | {
        'exact_match': exact_match(predictions, references)}
  if kind == 'translation':
    return {'bleu': bleu(predictions, references),
            'exact_match': exact_match(predictions, references)}
  if kind == 'exact_match':
    return {'exact_match': exact_match(predictions, references)}
  raise ValueError(f'unknown task metric kind {kind!r}: choose one of {", ".join(KINDS)}')
