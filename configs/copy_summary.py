"""A small MemGPT on the built-in seq2seq copy task (memgpt_jax/data/copy_task.py):
summarise a generated report by repeating its trade, rare names and number included.

Run:     memgpt-train --config=configs/copy_summary.py --workdir=runs/copy_summary
         memgpt-sample --workdir=runs/copy_summary --inputs='Day 3. Ro Vek sold 12 lamps to Ma Sul.'
Reaches: see experiments/results/seq2seq.md (exact match of greedy
         summaries on held-out reports, pointer on against off; written by
         experiments/seq2seq.py).

One segment of 256 tokens holds a report and its summary, so attention alone can
reach every source token: the pointer is the only difference between on and off.
"""

import pathlib

import ml_collections

from memgpt_jax.config_lib import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(pathlib.Path(__file__).with_name('default.py'))
  model = config.model
  model.d_model = 128
  model.num_layers = 3
  model.num_heads = 4
  model.mlp_dim = 384
  model.segment_len = 256
  model.num_segments = 1
  model.pointer.head_dim = 32
  model.pointer.cache_len = 0

  data = config.data
  data.source = 'copy_summary'
  data.inputs_key = 'inputs'
  data.targets_key = 'targets'
  data.task_metrics = 'summarization'
  data.task = ml_collections.ConfigDict()
  data.task.seed = 0
  data.task.num_train = 20_000
  data.task.num_eval = 256
  data.task.num_distractors = 2

  config.sample.prompt = ('Day 7. Mira Tolvek met Sa Brennik. Koru Dalampis sold 4410 lamps '
                          'to Ibo Renstaad. It rained in Vashel.')  # a source: prints its summary
  config.sample.temperature = 0.0

  train = config.train
  train.batch_size = 16
  train.grad_accum_steps = 1  # one batch: default.py's micro-batches suit its rows
  train.num_steps = 600
  train.learning_rate = 2e-3
  train.warmup_steps = 50
  train.log_every = 25
  train.eval_every = 200
  train.eval_batches = 8
  train.generate_examples = 128
  train.generate_max_tokens = 80
  train.checkpoint_every = 600
  return config
