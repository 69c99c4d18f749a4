"""Evaluating one trained ablation run: accuracy per evaluation distance of a
synthetic task (each distance its own split), with chance and the leak check; or, on
text, bits per byte over whole documents, overall and by position in the document.

A model whose memory is off and whose pointer sees only the current segment cannot
know an answer D >= 1 segments back: its accuracy there must be at chance. Above
chance by LEAK_STANDARD_ERRORS binomial standard errors is a leak.
"""

import math
import pathlib
import resource
import time

from memgpt_jax import config_lib
from memgpt_jax.data import builders
from memgpt_jax.data import synthetic
from memgpt_jax.data.tokenizer import make_tokenizer
from memgpt_jax.model.transformer import MemGPT
from memgpt_jax.training import evaluation
from memgpt_jax.training import workdir as workdir_lib
from memgpt_jax.training.optimizer import make_optimizer
from memgpt_jax.training.partitioner import make_partitioner

LEAK_STANDARD_ERRORS = 4.0


def _restore_params(config, workdir: pathlib.Path, vocab_size: int):
  """The final checkpoint's params, and the partitioner that lays them out."""
  model = MemGPT(config_lib.validate(config, vocab_size))
  partitioner = make_partitioner(config, model, make_optimizer(config.train))
  return model, partitioner, workdir_lib.load_params(workdir, partitioner.abstract_state.params)


def leaks(accuracy: float, chance: float, answers: int) -> bool:
  """True when `accuracy` over `answers` is too far above chance to be luck."""
  standard_error = math.sqrt(chance * (1 - chance) / max(answers, 1))
  return accuracy > chance + LEAK_STANDARD_ERRORS * standard_error


def _reset_peak_memory():
  """Linux: the process's peak resident memory restarts from what it holds now, so that
  the next reading is the peak since (elsewhere the reading is the process's peak)."""
  try:
    pathlib.Path('/proc/self/clear_refs').write_text('5')
  except OSError:
    pass


def _peak_memory_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _sees_only_its_segment(config) -> bool:
  """No memory, no pointer cache and an attention window of one segment of the row (a
  plain GPT over the whole row sees every segment: it is a bound, not a leak check)."""
  model = config.model
  return (not model.memory.enabled
          and (not model.pointer.enabled or model.pointer.cache_len == 0)
          and builders.row_layout(config)[0] == model.segment_len)


def evaluate_distances(config, workdir: pathlib.Path) -> dict:
  """Accuracy per evaluation distance (its own split), with chance and the leak check,
  and the evaluation's time and peak resident memory at each.
  A run trained in streams (each example a document, rows continuing it) reads each
  example whole with its state carried, and again from a fresh state at every row
  ('reset'): a question rows after its context must then be at chance."""
  tokenizer = make_tokenizer(config.data)
  model, partitioner, params = _restore_params(config, workdir, tokenizer.vocab_size)
  eval_model = MemGPT(model.cfg)
  task = config.data.task
  chance = synthetic.chance_accuracy(config.data.source, task)
  streams = config.data.layout == 'streams'
  distances = {}
  for distance in task.eval_distances:
    split = synthetic.eval_split(distance)
    evaluator = lambda **kwargs: evaluation.Evaluator(config, tokenizer, eval_model,
                                                      partitioner, split, **kwargs)(params)
    _reset_peak_memory()
    start = time.perf_counter()
    metrics = evaluator()
    # The first distance's time includes compiling the evaluation step; the others
    # reuse it (rows are read in pieces of one training row, whatever their length).
    cost = {'eval_seconds': time.perf_counter() - start, 'eval_peak_rss_mib': _peak_memory_mib()}
    answers = int(metrics['scored_tokens'])
    checked = distance >= 1 and _sees_only_its_segment(config)
    distances[str(distance)] = {
        'accuracy': metrics['accuracy'], 'loss': metrics['loss'], 'answers': answers,
        'segments': distance + 1, 'checked': checked,
        'leak': checked and leaks(metrics['accuracy'], chance, answers), **cost}
    if streams:
      reset = evaluator(carried=False)['accuracy']
      # The question's segment lies in a later row than the context's first segment.
      later_row = (synthetic.context_segments(config.data.source, task) - 1
                   + distance) >= config.model.num_segments
      distances[str(distance)] |= {'reset_accuracy': reset, 'reset_checked': later_row,
                                   'reset_leak': later_row and leaks(reset, chance, answers)}
  return {'chance': chance, 'distances': distances}


def evaluate_documents(config, workdir: pathlib.Path) -> dict:
  """Bits per byte over the whole documents of the validation split (the first
  train.eval_documents; all if 0), by position in the document too: with the model's
  state carried through each document ('carried'), and from a fresh state at every row
  ('reset', what a model trained on packed rows saw). One number for a model without
  state (no memory, no pointer cache): both are the same."""
  tokenizer = make_tokenizer(config.data)
  documents = config.copy_and_resolve_references()
  documents.data.layout = 'streams'
  model, partitioner, params = _restore_params(documents, workdir, tokenizer.vocab_size)
  eval_model = MemGPT(model.cfg)
  stateless = not config.model.memory.enabled and not config.model.pointer.enabled
  return {'documents': {
      kind: evaluation.Evaluator(documents, tokenizer, eval_model, partitioner,
                                 carried=kind == 'carried')(params)
      for kind in (('reset',) if stateless else ('carried', 'reset'))}}
