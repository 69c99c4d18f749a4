"""seq2seq as a prefix LM and an encoder-decoder, mixtures, task metrics and
`memgpt-sample --inputs`, on the built-in copy task and tiny local text (fine-tuning: tests/test_fine_tuning.py)."""

import io
import json

import numpy as np
import pytest

from conftest import copy_config, text_config
from memgpt_jax import sampling
from memgpt_jax.data import builders, copy_task, pipeline, records, translation_task
from memgpt_jax.data.errors import DataError
from memgpt_jax.data.tokenizer import ByteTokenizer
from memgpt_jax.training.metrics_writer import read_metrics
from memgpt_jax.decode import generate_targets
from memgpt_jax.training.trainer import train_and_evaluate

TOK = ByteTokenizer()


def test_copy_task_is_deterministic_and_its_summary_is_in_the_source():
  for index in range(20):
    example = copy_task.make_example(0, 'validation', index)
    assert example == copy_task.make_example(0, 'validation', index)
    assert example['targets'] in example['inputs']
  assert copy_task.make_example(0, 'train', 0) != copy_task.make_example(0, 'validation', 0)
  assert copy_task.make_example(0, 'train', 0) != copy_task.make_example(1, 'train', 0)


def test_toy_translation_reorders_translates_and_copies_names():
  """Each target sentence is subject-object-verb in the made-up lexicon: the verb's
  translation last, every common word translated, every name copied unchanged."""
  lexicon = {**translation_task.NOUNS, **translation_task.ADJECTIVES,
             **translation_task.VERBS, **translation_task.PREPOSITIONS}
  target_words = set(lexicon.values()) | {translation_task.SUBJECT, translation_task.OBJECT}
  for index in range(50):
    example = translation_task.make_example(0, 'validation', index, num_sentences=3)
    assert example == translation_task.make_example(0, 'validation', index, num_sentences=3)
    sources = example['inputs'].removesuffix(' .').split(' . ')
    targets = example['targets'].removesuffix(' .').split(' . ')
    assert len(sources) == len(targets) == 3
    for source, target in zip(sources, targets):
      source, target = source.split(), target.split()
      verb = next(word for word in source if word in translation_task.VERBS)
      assert source.index(verb) < len(source) - 1  # the source's verb has its object after it
      assert target[-2:] == [translation_task.OBJECT, translation_task.VERBS[verb]]
      names = sorted(word for word in source if word[0].isupper())
      assert sorted(word for word in target if word[0].isupper()) == names
      assert {word for word in target if not word[0].isupper()} <= target_words
  assert translation_task.make_example(0, 'train', 0) != \
      translation_task.make_example(0, 'validation', 0)


def test_the_translation_builder_writes_the_generated_pairs(data_dir):
  config = copy_config(data_dir)
  config.data.source = 'toy_translation'
  config.data.task.num_sentences = 2
  source = builders.split_source(builders.prepare(config.data), 'validation')
  assert len(source) == config.data.task.num_eval
  for index in range(len(source)):
    want = translation_task.make_example(0, 'validation', index, 2)
    assert records.record_texts(source[index], config.data) == (want['inputs'], want['targets'])


def test_seq2seq_rows_hold_whole_examples_with_loss_on_targets(data_dir):
  config = copy_config(data_dir)
  source = builders.split_source(builders.prepare(config.data), 'train')
  examples = {records.record_texts(source[i], config.data) for i in range(len(source))}
  batch = next(pipeline.make_train_iterator(config, TOK, 0, 1))
  found = 0
  for row in range(batch['inputs'].shape[0]):
    # The row's N + 1 tokens; the last one belongs to the last document unless padding.
    stream = np.append(batch['inputs'][row], batch['targets'][row, -1])
    last_doc = batch['doc_ids'][row, -1] if stream[-1] != TOK.pad_id else 0
    docs = np.append(batch['doc_ids'][row], last_doc)
    for doc in range(1, docs.max() + 1):
      at = np.flatnonzero(docs == doc)
      tokens = stream[at]
      prefix = np.append(batch['prefix'][row], False)[at]
      inputs, targets = TOK.decode(tokens[:prefix.sum()]), TOK.decode(tokens[prefix.sum():])
      assert (inputs, targets) in examples  # never split, never truncated here
      assert tokens[prefix.sum() - 1] == tokens[-1] == TOK.eos_id
      # The loss covers exactly the targets and their eos: from the input's eos on.
      inputs_at = at[at < len(batch['mask'][row])]
      np.testing.assert_array_equal(batch['mask'][row, inputs_at][:len(at) - 1],
                                    np.arange(len(at) - 1) >= prefix.sum() - 1)
      found += 1
  assert found >= 4
  assert np.all(batch['mask'][batch['doc_ids'] == 0] == 0)


def test_long_examples_are_truncated_to_one_row(data_dir):
  config = copy_config(data_dir, segment_len=16, num_segments=2)  # rows of 32 tokens
  batch = next(pipeline.make_train_iterator(config, TOK, 0, 1))
  assert np.all(batch['doc_ids'] <= 1)  # one (truncated) example per row
  targets_len = batch['mask'].sum(axis=1)
  assert np.all(targets_len <= 16) and np.all(targets_len >= 2)
  assert np.all(batch['prefix'][:, 0])


def mixture_config(data_dir, tmp_path):
  config = text_config(data_dir, tmp_path)
  copy = copy_config(data_dir)
  config.data.task = copy.data.task
  config.data.mixture = {
      'copy': {'rate': 3.0, 'source': 'copy_summary', 'inputs_key': 'inputs',
               'targets_key': 'targets', 'task_metrics': 'exact_match'},
      'code': {'rate': 1.0}}
  config.train.generate_examples, config.train.generate_max_tokens = 4, 6
  return config


def test_mixture_draws_by_rate_and_resumes_exactly(data_dir, tmp_path):
  config = mixture_config(data_dir, tmp_path)
  it = pipeline.make_train_iterator(config, TOK, 0, 1)
  batches = [next(it) for _ in range(4)]
  rows = np.concatenate([b['prefix'].any(axis=1) for b in batches])
  assert rows.mean() == pytest.approx(0.75, abs=0.01)  # copy rows 3 : code rows 1
  state = json.loads(json.dumps(it.get_state()))
  expected = next(it)
  resumed = pipeline.make_train_iterator(config, TOK, 0, 1)
  resumed.set_state(state)
  got = next(resumed)
  for key in expected:
    np.testing.assert_array_equal(got[key], expected[key])


def test_bad_mixture_entries_are_refused(data_dir, tmp_path):
  config = mixture_config(data_dir, tmp_path)
  config.data.mixture.code.rate = 0.0
  with pytest.raises(DataError, match='data.mixture.code.rate'):
    pipeline.task_configs(config)
  config.data.mixture.code.rate = 1.0
  config.data.mixture.code.sauce = 'x'
  with pytest.raises(DataError, match='data.mixture.code.sauce is not a data setting'):
    pipeline.task_configs(config)


def test_mixture_trains_and_reports_every_task(data_dir, tmp_path):
  config = mixture_config(data_dir, tmp_path)
  config.train.update(coverage_loss=0.5, log_every=2)
  metrics = train_and_evaluate(config, tmp_path / 'run')
  assert {'copy/loss', 'copy/exact_match', 'code/loss', 'code/bits_per_byte'} <= metrics.keys()
  assert 'code/exact_match' not in metrics and 'loss' not in metrics
  coverage = [r['coverage_loss'] for r in read_metrics(tmp_path / 'run', 'train')]
  assert len(coverage) == config.train.num_steps // config.train.log_every
  assert all(np.isfinite(coverage)) and max(coverage) > 0


@pytest.fixture(scope='module', params=['decoder', 'encoder_decoder'])
def copy_run(data_dir, tmp_path_factory, request):
  """A trained copy-task model of each architecture (the encoder's source: 2 segments)."""
  workdir = tmp_path_factory.mktemp('copy_run')
  config = copy_config(data_dir, 256, 1)
  config.model.arch = request.param
  config.model.encoder.num_segments = 2
  return workdir, train_and_evaluate(config, workdir)


def test_seq2seq_training_reports_task_metrics(copy_run):
  _, metrics = copy_run
  assert {'loss', 'bits_per_byte', 'exact_match', 'rouge1', 'rouge2', 'rougeL'} <= metrics.keys()
  assert all(0.0 <= metrics[k] <= 100.0 for k in ('exact_match', 'rouge1', 'rougeL'))


def test_generated_targets_match_the_stream_sampler(copy_run):
  """Batched greedy generation (left-padded) gives each source the target that the
  one-sample streaming path gives it (exactly so when an example fits one segment,
  as here: padding shifts where later segments start)."""
  workdir, _ = copy_run
  decoder, tokenizer, _ = sampling.load_decoder(workdir)
  sources = [copy_task.make_example(0, 'test', i)['inputs'] for i in range(3)]
  sources[1] = sources[1][:40]  # rows of different lengths
  batched = generate_targets(decoder, tokenizer, sources, 12, 1000)
  for source, target in zip(sources, batched):
    out = io.StringIO()
    streamed = sampling.sample(decoder, tokenizer, source, 12, temperature=0.0,
                               seq2seq=True, out=out)[0]
    assert streamed == target
    assert out.getvalue().startswith(source + '\n=> ')
