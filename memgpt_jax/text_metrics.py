"""Task metrics over decoded text: ROUGE, BLEU and exact match, in percent (0..100).

ROUGE is Google's `rouge_score` package with its default tokenizer (lowercased runs
of [a-z0-9]) and no stemming, as t5.evaluation.metrics.rouge scores it, so numbers
compare with papers that used it (T5 reports rougeLsum and a bootstrap median; here
rougeL and the plain mean); BLEU is sacrebleu's corpus BLEU (13a tokens, exp
smoothing), whose signature papers report. Every function takes one reference per
prediction.
"""

from collections.abc import Sequence

import sacrebleu

KINDS = ('summarization', 'translation', 'exact_match')
ROUGE_TYPES = ('rouge1', 'rouge2', 'rougeL')


def _check(predictions: Sequence[str], references: Sequence[str]):
  if len(predictions) != len(references):
    raise ValueError(f'{len(predictions)} predictions but {len(references)} references')
  if not predictions:
    raise ValueError('no predictions to score')


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
  """Mean ROUGE-1, ROUGE-2 and ROUGE-L F-measures over the examples; an empty
  prediction or reference scores 0."""
  _check(predictions, references)
  # rouge_score imports nltk (~0.7 s): paid only by the runs that score ROUGE.
  from rouge_score import rouge_scorer  # pylint: disable=g-import-not-at-top
  scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False)
  totals = dict.fromkeys(ROUGE_TYPES, 0.0)
  for prediction, reference in zip(predictions, references):
    scores = scorer.score(target=reference, prediction=prediction)
    for rouge_type in ROUGE_TYPES:
      totals[rouge_type] += scores[rouge_type].fmeasure
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
