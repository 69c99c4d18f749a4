"""A small MemGPT on a synthetic long-range task, and its ablation variants.

Run:     memgpt-train --config=configs/synthetic.py --workdir=runs/recall
         [--config.data.source=recall|passkey|copy|induction|facts|dialogue]
         memgpt-train --config=configs/synthetic.py:slots,gru --workdir=runs/recall_gru
Reaches: see experiments/results/ (accuracy per distance, written by experiments/ablate.py).

Variants (VARIANTS below; comma-separated after the file name, applied in order): each
changes one thing, so a grid of them (experiments/ablate.py) is a grid of ablations.

Rows are T * K tokens; the context sits in segment 0 and query blocks at distances
data.task.train_distances (segments later). The pointer's cache of earlier segments
is off (cache_len 0), so with memory off nothing outside the current segment is seen
and accuracy beyond distance 0 must be at chance (the leak check).
"""

import pathlib

import ml_collections

from memgpt_jax.config_lib import apply_variants, load_config

_DELTA = 'model.memory.delta.'
VARIANTS = {
    'memory_off': {'model.memory.enabled': False},
    'pointer_off': {'model.pointer.enabled': False},
    'bptt_truncated': {'model.memory.bptt_segments': 1},  # cut at every segment
    'one_layer': {'model.memory.layers': '1'},  # memory in the second layer only
    'first_layer': {'model.memory.layers': '0'},  # memory in the first layer only
    # The slot memory (fixed gate, 16 slots) and its own variants (after 'slots').
    'slots': {'model.memory.kind': 'slots'},
    'gru': {'model.memory.slots.gate': 'gru'},
    'overwrite': {'model.memory.slots.gate': 'none'},
    'slots_8': {'model.memory.slots.num_slots': 8},
    'slots_32': {'model.memory.slots.num_slots': 32},
    'slots_128': {'model.memory.slots.num_slots': 128},
    # The delta memory's knobs.
    'no_key_shift': {_DELTA + 'key_shift': False},
    'elu_plus_one': {_DELTA + 'feature_map': 'elu_plus_one'},
    'identity_map': {_DELTA + 'feature_map': 'identity'},
    'fixed_beta': {_DELTA + 'write_strength': 'fixed'},
    'pointer_beta': {_DELTA + 'write_strength': 'pointer'},
    'decay': {_DELTA + 'decay': 'learned'},
    'head_gate': {_DELTA + 'read_gate': 'head'},
    'no_gate': {_DELTA + 'read_gate': 'none'},
    'wide_keys': {_DELTA + 'key_dim': 64},
    'sparse_beta': {_DELTA + 'write_strength': 'sparse'},  # exact zeros: no write
    'write_cost': {'train.write_cost': 0.1},  # charge the loss for mean beta
}


def get_config(variants: str | None = None) -> ml_collections.ConfigDict:
  config = load_config(pathlib.Path(__file__).with_name('default.py'))
  model = config.model
  model.d_model = 64
  model.num_layers = 2
  model.num_heads = 4
  model.mlp_dim = 128
  # d_model^-1/2, not GPT-2's 0.02: at 0.02 the look-ups of these tasks (the pointer's,
  # the memory's) start from near-zero attention logits and take thousands of steps
  # to form (experiments/results/recall_exploration.md).
  model.init_std = 0.125
  model.segment_len = 32  # T
  model.num_segments = 4  # K
  model.memory.slots.num_slots = 16
  model.pointer.head_dim = 16
  model.pointer.cache_len = 0

  config.data.source = 'recall'
  task = config.data.task = ml_collections.ConfigDict()
  task.seed = 0
  task.num_train = 8192
  task.num_eval = 128  # per evaluation split
  # Query blocks in these segments of a training row; distance 0 (inside the window)
  # teaches the look-up itself, the others make the model carry it in memory.
  task.train_distances = (0, 1, 2, 3)
  # Accuracy is reported per distance; 7 and 15 are rows of 2K and 4K segments.
  task.eval_distances = (0, 1, 2, 4, 7, 15)
  task.num_pairs = 6  # recall, induction: pairs in the context
  task.num_queries = 3  # recall, induction, facts: queries (facts: people asked) per block
  task.num_keys = 32  # recall: ids 0..31 are keys
  task.num_values = 16  # recall: the next 16 ids are values (chance 1/16)
  # recall, facts, dialogue: the pairs (facts) are spread over this many segments (distances
  # count from the last)
  task.context_segments = 1
  task.num_facts = 10  # facts, dialogue: 2 to this many facts (chance 1/6 places, 1/8 names)
  # facts: the text between facts and questions, 'sentences' (a few fixed ones) or
  # 'corpus' (lines of the standard library's source naming no person or place).
  task.filler = 'sentences'
  # The row layout, if not the model's (0): a plain GPT over the whole row keeps the
  # segments its MemGPT lays the task out in (config_lib.plain_gpt sets these).
  task.segment_len = 0
  task.num_segments = 0
  task.passkey_len = 5  # passkey: digits (chance 1/10)
  task.copy_tokens = 6  # copy: symbols scattered in the region (chance 1/num_symbols)
  task.copy_region = 16
  task.num_symbols = 16
  task.vocab = 32  # induction: ids of the random sequence (chance 1/(vocab - num_pairs))

  train = config.train
  train.batch_size = 16
  train.grad_accum_steps = 1  # one batch: default.py's micro-batches suit its rows
  train.num_steps = 600
  train.learning_rate = 3e-3
  train.warmup_steps = 30
  train.log_every = 25
  train.eval_every = 100
  train.eval_batches = 8  # num_eval / batch_size: the whole validation split
  train.checkpoint_every = 100_000  # the driver saves only at the end
  train.async_checkpointing = False
  return apply_variants(config, variants, VARIANTS)
