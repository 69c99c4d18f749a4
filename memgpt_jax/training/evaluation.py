"""Evaluation on fixed splits: loss, bits per byte and pointer use for every task, and
task metrics (exact match, ROUGE, BLEU) from greedy generation for seq2seq tasks."""

import math

from absl import logging
import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec
import ml_collections
import numpy as np

from memgpt_jax import losses, text_metrics
from memgpt_jax.data import builders, records
from memgpt_jax.data.pipeline import make_eval_iterator, task_configs
from memgpt_jax.decode import Decoder, generate_targets
from memgpt_jax.model.transformer import MemGPT
from memgpt_jax.training.partitioner import JitPartitioner
from memgpt_jax.training import steps


class Evaluator:
  """Loss, perplexity, exact bits per byte, accuracy and pointer use on a fixed split.

  Rows are fed in pieces of at most one training row (model.num_segments segments),
  the model's state carried from piece to piece: the step compiles once for that
  shape whatever the rows' length (a synthetic task's long evaluation rows), and its
  memory does not grow with it. The state starts fresh with every batch; in the
  streams layout, whose rows read whole documents across batches, with every call
  only, and bits per byte is also reported by how far into its document each target
  is (train.eval_position_buckets: 'bits_per_byte/1K-4K' and so on).
  """

  def __init__(self, config, tokenizer, model: MemGPT, partitioner: JitPartitioner,
               split: str | None = None, carried: bool | None = None):
    """`carried`: whether the state goes on from batch to batch (default: in the
    streams layout); False in the streams layout reads whole documents row by row,
    each from a fresh state, as a model trained on packed rows saw them."""
    self._data = make_eval_iterator(config, tokenizer, split)
    self._tokenizer = tokenizer
    self._partitioner = partitioner
    self._model = model
    streams = config.data.layout == 'streams'
    self._carried = streams if carried is None else carried
    self._buckets = tuple(config.train.eval_position_buckets) if streams else ()
    self._num_groups = len(self._buckets) + 1 if self._buckets else 0  # the buckets' sums
    params = partitioner.state_shardings.params
    carry = partitioner.carry_shardings(model, config.train.batch_size)
    replicated = NamedSharding(partitioner.mesh, PartitionSpec())
    # The model and layout are static: equal ones share one compiled step.
    self._step = jax.jit(steps.eval_step, static_argnums=(3, 4, 5),
                         in_shardings=(params, carry, partitioner.batch_sharding),
                         out_shardings=(carry, replicated))
    self._initial = jax.jit(
        lambda p: model.apply({'params': p}, config.train.batch_size,
                              method=MemGPT.initial_state),
        in_shardings=(params,), out_shardings=carry)

  def __call__(self, params) -> dict[str, float]:
    """`params` in the partitioner's global layout."""
    pending, num_bytes = [], np.zeros(1 + self._num_groups, np.int64)
    carry = self._initial(params)
    for batch in self._data:
      batch = self._with_groups(batch)
      num_bytes += self._scored_bytes(batch)
      if not self._carried:
        carry = self._initial(params)
      for piece in self._pieces(batch):
        carry, sums = self._step(params, carry, self._partitioner.global_batch(piece),
                                 self._model, self._partitioner.activation_layout,
                                 self._num_groups)
        pending.append(sums)  # read back once, after the last: the pieces queue unblocked
    totals = {}
    for sums in jax.device_get(pending):
      totals = {k: totals.get(k, 0.0) + np.asarray(v, np.float64) for k, v in sums.items()}
    if jax.process_count() > 1:
      num_bytes = multihost_utils.process_allgather(num_bytes).sum(0)
    group_nll, group_tokens = totals.pop('group_nll', ()), totals.pop('group_tokens', ())
    metrics = split_metrics({k: float(v) for k, v in totals.items()}, int(num_bytes[0]))
    for name, nll, tokens, count in zip(bucket_names(self._buckets), group_nll,
                                        group_tokens, num_bytes[1:]):
      if tokens:
        metrics[f'bits_per_byte/{name}'] = float(nll) / math.log(2) / int(count)
    return metrics

  def _pieces(self, batch: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The batch's rows cut into consecutive pieces of equal length: the training row's
    length, or the largest common divisor of it and the rows' (whole segments). An
    encoder-decoder's sources go whole with each piece."""
    length = batch['inputs'].shape[1]
    piece = math.gcd(length, self._model.cfg.seq_len)
    whole = {k: batch[k] for k in ('encoder_inputs', 'encoder_doc_ids') if k in batch}
    return [{k: v[:, start:start + piece] for k, v in batch.items() if k not in whole} | whole
            for start in range(0, length, piece)]

  def _with_groups(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Streams' batches: each target's position -> its bucket's index ('groups')."""
    if 'positions' not in batch:
      return batch
    batch = dict(batch)
    positions = batch.pop('positions')
    if self._buckets:
      batch['groups'] = np.searchsorted(self._buckets, positions, side='right').astype(np.int32)
    return batch

  def _scored_bytes(self, batch: dict[str, np.ndarray]) -> np.ndarray:
    """The bytes of the batch's scored targets: all of them, then each bucket's."""
    counts = [scored_bytes(self._tokenizer, batch)]
    if self._buckets:
      scored = batch['mask'] > 0
      counts += [self._tokenizer.num_bytes(batch['targets'][scored & (batch['groups'] == g)])
                 for g in range(len(self._buckets) + 1)]
    return np.asarray(counts, np.int64)


def bucket_names(buckets: tuple[int, ...]) -> list[str]:
  """(1024, 4096) -> ['0-1K', '1K-4K', '4K+']: token positions, K = 1024."""
  def short(n: int) -> str:
    return f'{n // 1024}K' if n and n % 1024 == 0 else str(n)
  bounds = (0,) + tuple(buckets)
  return ([f'{short(a)}-{short(b)}' for a, b in zip(bounds, bounds[1:])] +
          ([f'{short(bounds[-1])}+'] if buckets else []))


def scored_bytes(tokenizer, batch: dict[str, np.ndarray]) -> int:
  """The UTF-8 bytes the batch's scored targets stand for (eos and padding: none)."""
  return tokenizer.num_bytes(batch['targets'][batch['mask'] > 0])


def split_metrics(totals: dict[str, float], num_bytes: int) -> dict[str, float]:
  """A split's metrics from losses.eval_sums summed over its batches and the bytes of
  its scored targets: every ratio over the split's totals, not a mean of batches', and
  how many targets were scored (what a count-based test of the accuracy needs)."""
  totals = dict(totals)
  scored = totals.pop('tokens')
  tokens = max(scored, 1.0)
  loss = totals.pop('nll') / tokens
  metrics = {'loss': loss, 'perplexity': math.exp(min(loss, 50.0)),
             'accuracy': totals.pop('correct') / tokens, 'scored_tokens': scored}
  if num_bytes:
    metrics['bits_per_byte'] = loss * tokens / math.log(2) / num_bytes
  return metrics | {k: v / tokens for k, v in totals.items()}


class GenerationEvaluator:
  """Greedy targets of the first train.generate_examples records of the eval split,
  scored against the references by data.task_metrics (memgpt_jax/text_metrics.py).

  Runs on one process: with several, each would need its share of the batch as
  global arrays, which the decoder does not take.
  """

  def __init__(self, config: ml_collections.ConfigDict, tokenizer, model: MemGPT):
    source = builders.split_source(
        builders.prepare(config.data, config.model.segment_len, config.model.num_segments),
        config.data.eval_split)
    count = min(config.train.generate_examples, len(source))
    pairs = [records.record_texts(source[i], config.data) for i in range(count)]
    self._sources, self._references = zip(*pairs)
    self._kind = config.data.task_metrics
    self._tokenizer = tokenizer
    self._max_new_tokens = config.train.generate_max_tokens
    # As training cuts them: the encoder's source (and its eos), or the decoder's row.
    self._max_source_tokens = (
        model.cfg.encoder_segments * model.cfg.segment_len - 1
        if model.cfg.arch == 'encoder_decoder' else
        max(model.cfg.seq_len - self._max_new_tokens, 1))
    self._batch_size = config.train.batch_size
    self._model = model

  def __call__(self, params) -> dict[str, float]:
    decoder = Decoder(self._model, {'params': params})  # compiled once, for every call
    predictions = []
    for start in range(0, len(self._sources), self._batch_size):
      predictions += generate_targets(
          decoder, self._tokenizer, list(self._sources[start:start + self._batch_size]),
          self._max_new_tokens, self._max_source_tokens)
    return text_metrics.task_metrics(self._kind, predictions, list(self._references))


class TaskEvaluators:
  """Every task of the config (a mixture has several), each reported on its own:
  metric names are prefixed 'task/' in a mixture."""

  def __init__(self, config: ml_collections.ConfigDict, tokenizer, model: MemGPT,
               partitioner: JitPartitioner):
    tasks = task_configs(config)
    self._evaluators = []
    for name, task in tasks.items():
      prefix = f'{name}/' if len(tasks) > 1 else ''
      self._evaluators.append((prefix, Evaluator(task, tokenizer, model, partitioner)))
      if task.data.task_metrics and jax.process_count() == 1:
        self._evaluators.append((prefix, GenerationEvaluator(task, tokenizer, model)))
      elif task.data.task_metrics and jax.process_index() == 0:
        logging.warning('data.task_metrics is computed on one process only: sample the '
                        'checkpoint with memgpt-sample --inputs to score it')

  def __call__(self, params) -> dict[str, float]:
    """`params` in the partitioner's global layout."""
    return {prefix + key: value for prefix, evaluate in self._evaluators
            for key, value in evaluate(params).items()}


def score_after_reading(model: MemGPT, params, rows, length: int, start: int,
                        mask: np.ndarray, chunk_segments: int) -> dict[str, float]:
  """losses.eval_sums of rows far longer than training, on their part from `start` (a
  whole number of segments): the tokens before it are read first with the state carried,
  `chunk_segments` segments per call, so that memory stays flat in the rows' length.
  `params`: the model's variables ({'params': ...}); `rows(a, b)`: tokens a .. b - 1 of
  every row ([B, b - a] ints; rows of `length` tokens need not be held whole); `mask`:
  [B, length - start - 1], the weights of the targets rows(start + 1, length)."""
  segment_len = model.cfg.segment_len

  # The parameters are arguments, not constants folded into the compiled programs.
  @jax.jit
  def advance(variables, state, chunk):  # only the state: the outputs before `start` are unused
    return model.apply(variables, chunk, state, method=MemGPT.run_segments)[0]

  @jax.jit
  def scored(variables, state, inputs, targets, weights):
    output = model.apply(variables, inputs, state, method=MemGPT.run_segments)[1]
    return losses.eval_sums(output, targets, weights)

  state = jax.jit(lambda variables: model.apply(variables, len(mask),
                                                method=MemGPT.initial_state))(params)
  for position in range(0, start, chunk_segments * segment_len):
    stop = min(position + chunk_segments * segment_len, start)
    state = advance(params, state, jnp.asarray(rows(position, stop), jnp.int32))
  rest = jnp.asarray(rows(start, length), jnp.int32)
  sums = scored(params, state, rest[:, :-1], rest[:, 1:], jnp.asarray(mask, jnp.float32))
  return {k: float(v) for k, v in jax.device_get(sums).items()}
