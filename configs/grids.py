"""The ablation grids of experiments/ablate.py, as data: each run is a config of
configs/ (with its named variants) and a few overrides, trained once per seed.

  python experiments/ablate.py --grid=NAME     (NAME: a key of GRIDS below)

What each grid measured is in experiments/results/<grid>.md; the tables of the README and
docs/experiments.md are made from those files.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Run:
  """One grid entry: an ablation config with a few overrides, trained once per seed."""
  label: str
  config: str  # relative to the repository root
  overrides: dict = dataclasses.field(default_factory=dict)
  # Memory and pointer off, one segment spanning the row, and the MLP widened to the
  # parameter count of the MemGPT it is compared with.
  plain_gpt: bool = False
  # The MLP widened to the parameter count of the config without the run's overrides
  # (a part switched off is paid for in MLP units).
  match_params: bool = False
  # A curriculum: easier tasks trained first, each stage fine-tuned from the one
  # before (--config.init_from); the run itself is the last stage. Overrides per stage.
  stages: tuple[dict, ...] = ()


@dataclasses.dataclass(frozen=True)
class Grid:
  runs: tuple[Run, ...]
  seeds: tuple[int, ...]
  overrides: dict  # applied to every run first
  # Text: also score the validation split's whole documents, the model's state carried
  # through each and reset every row, by position in the document
  # (experiments/ablation_eval.py's evaluate_documents).
  documents: bool = False


_SYNTHETIC = 'configs/synthetic.py'
# The pointer tasks sit inside one segment: the pointer copies, no memory is needed.
_IN_WINDOW = {'model.num_segments': 1, 'data.task.train_distances': (0,),
              'data.task.eval_distances': (0,), 'train.eval_every': 25}
_TEXT = {'data.source': 'pystdlib', 'model.pointer.cache_len': 32, 'train.eval_every': 10**6}


_LONG_TEXT = 'configs/long_text.py'
_PARTS = {'both': {}, 'memory': {'model.pointer.enabled': False},
          'pointer': {'model.memory.enabled': False}}


def _long_text() -> tuple[Run, ...]:
  """The long_text grid's runs (its comment, below, says what each one is)."""
  neither = {'model.memory.enabled': False, 'model.pointer.enabled': False,
             'data.layout': 'packed'}
  runs = [Run('long_text/gpt_window_T', _LONG_TEXT, neither, match_params=True),
          Run('long_text/gpt_window_KT', _LONG_TEXT, {'data.layout': 'packed'},
              plain_gpt=True)]
  for part, overrides in _PARTS.items():
    for layout in ('streams', 'packed'):
      runs.append(Run(f'long_text/{part}_{layout}', _LONG_TEXT,
                      overrides | {'data.layout': layout}, match_params=bool(overrides)))
  # The delta memory's knobs that may matter across steps, carried in streams: a learned
  # decay (1.877 against 1.931 bits per byte for the memory alone, one seed:
  # experiments/results/probe_decay.md) and the write the pointer chooses.
  for label, knob in (('decay', {'model.memory.delta.decay': 'learned'}),
                      ('pointer_write', {'model.memory.delta.write_strength': 'pointer'})):
    runs.append(Run(f'long_text/both_streams_{label}', _LONG_TEXT, knob | {
        'data.layout': 'streams'}, match_params=True))
  runs.append(Run('long_text/memory_streams_decay', _LONG_TEXT, _PARTS['memory'] | {
      'model.memory.delta.decay': 'learned', 'data.layout': 'streams'}, match_params=True))
  return tuple(runs)


_FACTS = {'data.source': 'facts', 'model.segment_len': 256, 'model.num_segments': 4,
          'data.task.context_segments': 2, 'data.task.train_distances': (0, 1, 2),
          'data.task.eval_distances': (0, 4, 39, 390), 'train.num_steps': 2000,
          'train.eval_every': 500}

# The facts in language, trained across steps (data.layout='streams'): the filler is
# the standard library's source; each example of 6 segments is a document that rows
# of 2 segments continue, so a question at distance 1-3 comes one or two rows (steps)
# after its facts and only the carried state can answer it.
# Three questions a block (num_queries), 4,000 steps at a learning rate of 1e-3: at 3e-3
# the within-row task stalled near 50% (lr 1e-3: 62.8% at D=0 after 800 steps,
# experiments/results/probe_facts_q3_lr1e3.md; 3e-3: 47.9%, probe_facts_q3.md).
_FACTS_STREAMS = _FACTS | {'data.layout': 'streams', 'model.num_segments': 2,
                           'data.task.num_segments': 6, 'data.task.filler': 'corpus',
                           'data.task.train_distances': (0, 1, 2, 3),
                           'data.task.num_queries': 3, 'train.learning_rate': 1e-3,
                           'train.num_steps': 4000, 'train.checkpoint_every': 500}

# Sparse writes (exact zeros) charged for by the loss: what kept the passkey through 1M
# tokens; the source's lines written over the facts may be what loses them later.
_SPARSE_WRITES = {'model.memory.delta.write_strength': 'sparse', 'train.write_cost': 0.1,
                  'model.memory.delta.price_full_writes': False}
# The default writes, for a stage before _SPARSE_WRITES (stages apply on top of the run's).
_LEARNED_WRITES = {'model.memory.delta.write_strength': 'learned', 'train.write_cost': 0.0,
                   'model.memory.delta.price_full_writes': False}
# Five times the write cost: the source's lines between facts and question write over
# the facts (the mean write strength in streams was 0.064 at a cost of 0.1, 0.010 at
# 0.5; 100K tokens after the facts 45% -> 57%).
_COSTLIER_WRITES = {'model.memory.delta.write_strength': 'sparse', 'train.write_cost': 0.5}
# Keys and values of 64 per head, not the head dimension (16): more room for the facts,
# and the source's writes interfere less with them.
_WIDE_KEYS = {'model.memory.delta.key_dim': 64, 'model.memory.delta.value_dim': 64}
# Sparse writes whose cost reaches the writes the clip holds at 1: the wide keys' second
# layer, which holds the facts, also writes on letters of the source, nearly all at full
# strength, where the cost has no gradient.
_PRICED_WRITES = _SPARSE_WRITES | {'model.memory.delta.price_full_writes': True}

# A curriculum: who went where inside one segment (2-5 facts and their questions in 256
# tokens: attention can answer, and a token carries six times the answers of the
# streams task), then across one segment boundary inside a row (the memory must carry
# the facts to the next segment's questions), then the streams task from those weights.
# From scratch neither the memory nor attention bound a person to a place: memory off
# at distance 0 (half the facts in the question's segment) stayed at 21.8%. Going
# straight from the first stage to the streams task lost what the first had learnt
# (validation 18-26% at 500-1,500 steps). With all three: 81% / 75% / 45% at about
# 1K / 10K / 100K tokens (sparse writes, 6,000 streams steps; experiments/results/
# facts_streams.md).
_FACTS_SHORT = {'data.layout': 'packed', 'data.task.num_segments': 0,
                'data.task.context_segments': 1, 'data.task.num_facts': 5}
_FACTS_IN_SEGMENT = _FACTS_SHORT | {'model.num_segments': 1, 'data.task.train_distances': (0,),
                                    'data.task.eval_distances': (0,), 'train.num_steps': 1000}
_FACTS_NEXT_SEGMENT = _FACTS_SHORT | {'data.task.train_distances': (0, 1),
                                      'data.task.eval_distances': (0, 1),
                                      'train.num_steps': 2000}
_FACTS_CURRICULUM = _FACTS_STREAMS | {'train.num_steps': 3000}
# The curriculum's first two stages with the default writes, and with a first streams
# stage of sparse writes after them (the longer curriculum: its run is a second).
_LEARNED_STAGES = (_FACTS_IN_SEGMENT | _LEARNED_WRITES, _FACTS_NEXT_SEGMENT | _LEARNED_WRITES)
_SPARSE_STAGES = _LEARNED_STAGES + (_FACTS_CURRICULUM | _SPARSE_WRITES,)
# Documents of 42 segments (21 rows) with a last question 40 segments after the facts:
# rows that are mostly source, so that the write cost prices the source's writes (92%
# of the facts survived 100K tokens of it and 29% 1M: facts_long.md).
_FACTS_FAR = _FACTS_CURRICULUM | {'data.task.num_segments': 42,
                                  'data.task.train_distances': (0, 1, 2, 3, 40),
                                  'train.num_steps': 2000}

# The easy stages of the recall curriculum: distances 0 and 1 only.
_RECALL_STAGE = {'data.task.train_distances': (0, 1), 'data.task.eval_distances': (0, 1)}


def _variant(label: str, variants: str, overrides: dict | None = None, **kwargs) -> Run:
  """A run of configs/synthetic.py with its named variants (e.g. 'slots,gru')."""
  config = f'{_SYNTHETIC}:{variants}' if variants else _SYNTHETIC
  return Run(label, config, overrides or {}, **kwargs)


def _after_wide_keys(name: str, final: dict) -> Run:
  """facts/wide_keys_<name>_curriculum: the wide keys' run as its last stage (its stage
  directories copied serve), then `final`."""
  return _variant(f'facts/wide_keys_{name}_curriculum', '', final | _WIDE_KEYS,
                  stages=_SPARSE_STAGES + (_FACTS_CURRICULUM | _SPARSE_WRITES,))


def _pointer_pair(task: str, steps: int) -> tuple[Run, ...]:
  overrides = _IN_WINDOW | {'data.source': task, 'train.num_steps': steps}
  return (_variant(f'{task}/pointer_on', '', overrides),
          _variant(f'{task}/pointer_off', 'pointer_off', overrides))


def _text(steps: int, memories: tuple[str, ...] = ('delta', 'slots')) -> tuple[Run, ...]:
  """MemGPT with each memory kind, and the plain GPT of the first one's parameters."""
  overrides = _TEXT | {'train.num_steps': steps}
  runs = tuple(_variant(f'text/memgpt_{kind}', '' if kind == 'delta' else kind, overrides)
               for kind in memories)
  return runs + (_variant('text/plain_gpt', '', overrides, plain_gpt=True),)


def _memories(names: tuple[str, ...], steps: int, source: str = 'recall') -> tuple[Run, ...]:
  """Runs named by their variants: 'delta' is the base config (the delta memory)."""
  return tuple(_variant(f'{source}/{name.replace(",", "_")}', '' if name == 'delta' else name,
                        {'data.source': source, 'train.num_steps': steps}) for name in names)


# Pointer on/off inside one segment and MemGPT against the plain GPT on text.
_POINTER_AND_TEXT = (_pointer_pair('induction', 1000) + _pointer_pair('copy', 1000)
                     + _text(500))
# The delta memory's knobs, each changed alone (configs/synthetic.py VARIANTS).
_DELTA_KNOBS = ('no_key_shift', 'elu_plus_one', 'identity_map', 'fixed_beta', 'pointer_beta',
                'decay', 'head_gate', 'no_gate', 'wide_keys', 'sparse_beta',
                'sparse_beta,write_cost')
_SLOT_KNOBS = ('slots,gru', 'slots,overwrite', 'slots,slots_8', 'slots,slots_32',
               'slots,slots_128')
# Core recall is also scored at 16x the trained rows (D = 63: 64 segments).
_LONG_EVAL = {'data.task.eval_distances': (0, 1, 2, 4, 7, 15, 63)}


# Sources of about 3.7 and 15.4 windows of 64 tokens on average (5 and 26 distractor
# sentences; 99% of them fit the encoder's 5 and 18 windows): label -> (distractors,
# encoder windows).
_SOURCE_LENGTHS = {'4x': (5, 5), '16x': (26, 18)}


def _long_sources() -> tuple[Run, ...]:
  """The copy task with long sources: each architecture with its memory on and off (off
  paid for in MLP units; the prefix LM at the encoder-decoder's parameters)."""
  runs = []
  for length, (distractors, windows) in _SOURCE_LENGTHS.items():
    task = {'data.task.num_distractors': distractors, 'model.encoder.num_segments': windows}
    prefix_lm = task | {'model.arch': 'decoder', 'model.num_segments': windows + 1}
    for memory, off in (('memory_on', {}), ('memory_off', {'model.memory.enabled': False})):
      runs += [Run(f'{length}/encoder_decoder_{memory}', 'configs/copy_summary.py',
                   task | off, match_params=bool(off)),
               Run(f'{length}/prefix_lm_{memory}', 'configs/copy_summary.py', prefix_lm | off,
                   match_params=True)]
  return tuple(runs)


def _capacity(pairs: tuple[int, ...], steps: int) -> tuple[Run, ...]:
  """Recall against the number of pairs: the context spread over 4 segments (the memory
  must accumulate it), queries 2 segments after it. Delta with d_k = 64, 64 slots, no
  memory, and a plain GPT attending over the whole row (the upper bound)."""
  runs = []
  for count in pairs:
    task = {'data.source': 'recall', 'train.num_steps': steps, 'model.num_segments': 6,
            'data.task.num_pairs': count, 'data.task.num_queries': min(count, 8),
            'data.task.num_keys': 128, 'data.task.context_segments': 4,
            'data.task.train_distances': (1, 2), 'data.task.eval_distances': (2,)}
    runs += [_variant(f'recall/pairs_{count}_delta', 'wide_keys', task),
             _variant(f'recall/pairs_{count}_slots', 'slots',
                      task | {'model.memory.slots.num_slots': 64}),
             _variant(f'recall/pairs_{count}_memory_off', 'memory_off', task),
             _variant(f'recall/pairs_{count}_full_attention', '', task, plain_gpt=True)]
  return tuple(runs)


GRIDS = {
    # Seconds: the driver end to end in the tests.
    'tiny': Grid(
        runs=(dataclasses.replace(_memories(('memory_off',), 3)[0],
                                  stages=({'train.num_steps': 2},)),)  # a curriculum
        + _text(2)[-1:],
        seeds=(0,),
        overrides={'model.num_layers': 1, 'model.d_model': 16, 'model.num_heads': 2,
                   'model.mlp_dim': 32, 'model.segment_len': 32, 'model.num_segments': 2,
                   'model.memory.slots.num_slots': 4, 'model.pointer.head_dim': 8,
                   'data.task.num_pairs': 3, 'data.task.num_queries': 2,
                   'data.task.num_train': 64, 'data.task.num_eval': 32,
                   'data.task.train_distances': (1,), 'data.task.eval_distances': (1, 3),
                   'data.task.copy_tokens': 3, 'data.task.copy_region': 8,
                   'train.batch_size': 8, 'train.eval_batches': 4, 'train.log_every': 2,
                   'train.warmup_steps': 1}),
    # The whole-document evaluation end to end (tests): a plain GPT and a carried MemGPT
    # of the long_text grid, tiny, on the standard library's files.
    'tiny_documents': Grid(
        runs=tuple(r for r in _long_text()
                   if r.label in ('long_text/gpt_window_T', 'long_text/both_streams')),
        seeds=(0,),
        overrides={'model.num_layers': 1, 'model.d_model': 16, 'model.num_heads': 2,
                   'model.mlp_dim': 32, 'model.segment_len': 16, 'model.num_segments': 2,
                   'model.pointer.head_dim': 8, 'model.pointer.cache_len': 16,
                   'data.source': 'pystdlib', 'train.batch_size': 4,
                   'train.grad_accum_steps': 1, 'train.num_steps': 2, 'train.warmup_steps': 1,
                   'train.log_every': 1, 'train.eval_documents': 2,
                   'train.eval_position_buckets': (64, 1024),
                   'train.async_checkpointing': False},
        documents=True),
    # Under 15 minutes on a 2-core CPU: one seed, the headline comparisons only.
    'quick': Grid(
        runs=_memories(('delta', 'slots', 'memory_off'), 300) + _pointer_pair('induction', 150)
        + _text(100, memories=('delta',)),
        seeds=(0,),
        overrides={'data.task.eval_distances': (0, 1, 2, 4, 7), 'train.eval_batches': 4}),
    # The headline numbers, three seeds: recall with the delta memory, the slot memory
    # (two gates) and none, to 16x the trained rows; pointer on/off on induction and
    # copying; MemGPT with each memory against the plain GPT (equal parameters) on text.
    'core': Grid(
        runs=tuple(dataclasses.replace(r, overrides=r.overrides | _LONG_EVAL) for r in
                   _memories(('delta', 'slots', 'slots,gru', 'memory_off'), 1500))
        + _POINTER_AND_TEXT,
        seeds=(0, 1, 2),
        overrides={}),
    # Recall through a curriculum (slot memory): one key-value pair at distance <= 1,
    # then two pairs, then the task itself (six pairs, distances 0-3); against memory off.
    'curriculum': Grid(
        runs=(_variant('recall/slots_curriculum', 'slots',
                       {'data.source': 'recall', 'train.num_steps': 3000},
                       stages=(_RECALL_STAGE | {'data.task.num_pairs': 1,
                                                'data.task.num_queries': 1,
                                                'train.num_steps': 3000},
                               _RECALL_STAGE | {'data.task.num_pairs': 2,
                                                'data.task.num_queries': 2,
                                                'train.num_steps': 1500})),
              _variant('recall/memory_off', 'memory_off',
                       {'data.source': 'recall', 'train.num_steps': 7500})),
        seeds=(0, 1, 2),
        overrides={}),
    # Text at the default config (make train's model and budget): MemGPT with each
    # memory kind against the plain GPT of the delta MemGPT's parameters, three seeds.
    'text': Grid(
        runs=(Run('text/memgpt_delta', 'configs/default.py'),
              Run('text/memgpt_slots', 'configs/default.py', {'model.memory.kind': 'slots'}),
              Run('text/plain_gpt', 'configs/default.py', plain_gpt=True)),
        seeds=(0, 1, 2),
        overrides={}),
    # Long documents (configs/long_text.py: the standard library's packages whole): what
    # each part buys on text at equal parameters and tokens. Plain GPTs attending over
    # one segment (T) and over the whole row (K * T); the MemGPT with both parts, the
    # memory alone and the pointer alone, each with its state carried from row to row
    # through whole documents (streams) and reset every row (packed).
    'long_text': Grid(runs=_long_text(), seeds=(0, 1, 2), overrides={}, documents=True),
    # Facts in language (BABILong's single supporting fact): 2-10 sentences of who went
    # where over two 256-token segments, the question 0-2 segments later in training;
    # evaluated with ~1K, 10K and 100K tokens of filler text before the question.
    # Memory off (the pointer sees its segment only) must sit at chance: the leak check.
    'facts': Grid(
        runs=(_variant('facts/delta', '', _FACTS), _variant('facts/memory_off', 'memory_off',
                                                            _FACTS)),
        seeds=(0, 1, 2),
        overrides={}),
    # The same across training steps: each example a document of the streams layout,
    # read whole in evaluation with the state carried, and again reset every row (a
    # question rows after its facts must then sit at chance: the leak check).
    # Then the curriculum (_FACTS_CURRICULUM) that ends in the streams task, with learned
    # and with sparse writes (and these again with 3,000 more steps, a second
    # learning-rate cycle).
    'facts_streams': Grid(
        runs=(_variant('facts/streams_delta', '', _FACTS_STREAMS),
              _variant('facts/streams_memory_off', 'memory_off', _FACTS_STREAMS),
              _variant('facts/curriculum', '', _FACTS_CURRICULUM,
                       stages=(_FACTS_IN_SEGMENT, _FACTS_NEXT_SEGMENT)),
              _variant('facts/sparse_curriculum', '', _FACTS_CURRICULUM | _SPARSE_WRITES,
                       stages=_LEARNED_STAGES),
              _variant('facts/sparse_longer_curriculum', '', _FACTS_CURRICULUM | _SPARSE_WRITES,
                       stages=_SPARSE_STAGES),
              # The one before, then 3,000 streams steps at the higher write cost.
              _variant('facts/costlier_writes_curriculum', '',
                       _FACTS_CURRICULUM | _COSTLIER_WRITES,
                       stages=_SPARSE_STAGES + (_FACTS_CURRICULUM | _SPARSE_WRITES,)),
              # The sparse longer curriculum with _WIDE_KEYS from its first stage.
              _variant('facts/wide_keys_curriculum', '',
                       _FACTS_CURRICULUM | _SPARSE_WRITES | _WIDE_KEYS,
                       stages=_SPARSE_STAGES),
              # The same with the last 3,000 streams steps at the higher write cost.
              _variant('facts/wide_keys_costlier_curriculum', '',
                       _FACTS_CURRICULUM | _COSTLIER_WRITES | _WIDE_KEYS,
                       stages=_SPARSE_STAGES),
              # The wide keys' curriculum, then 2,000 streams steps of far documents
              # (_FACTS_FAR), or of the same documents with _PRICED_WRITES (at the write
              # cost of 0.1, 1 and 5).
              _after_wide_keys('far', _FACTS_FAR | _SPARSE_WRITES),
              *(_after_wide_keys(name, _FACTS_CURRICULUM | _PRICED_WRITES | {
                  'train.num_steps': 2000, 'train.write_cost': cost})
                for name, cost in (('priced', 0.1), ('priced_cost1', 1.0),
                                   ('priced_cost5', 5.0))),
              # The wide keys' curriculum with both streams stages priced at write cost 1.
              _variant('facts/wide_keys_priced_streams_curriculum', '',
                       _FACTS_CURRICULUM | _PRICED_WRITES | _WIDE_KEYS
                       | {'train.write_cost': 1.0},
                       stages=_LEARNED_STAGES + (_FACTS_CURRICULUM,))),
        seeds=(0, 1, 2),
        overrides={}),
    # Dialogue (configs/chat.py): a name told early, asked 0-2 segments later in
    # training and up to 390 segments (100K tokens of small talk) later in evaluation;
    # memory on and off (the pointer sees its segment only: off must sit at chance).
    'dialogue': Grid(runs=(Run('dialogue/delta', 'configs/chat.py', {}),
                           Run('dialogue/memory_off', 'configs/chat.py:memory_off', {})),
                     seeds=(0, 1, 2), overrides={}),
    # The delta memory's knobs on recall, each changed alone, three seeds, at the budget
    # where the base config is past 99% (step 200-300).
    'delta_knobs': Grid(
        runs=_memories(('delta',) + _DELTA_KNOBS + ('bptt_truncated', 'one_layer'), 600),
        seeds=(0, 1, 2),
        overrides={}),
    # The encoder-decoder against the prefix LM (the MLP widened to its parameters) at
    # equal steps and rows, on the copy task and the toy translation; each source fits
    # the encoder's one segment, as source and target fit the prefix LM's row.
    'encoder_decoder': Grid(
        runs=tuple(run for task in ('copy_summary', 'toy_translation') for run in (
            Run(f'{task}/encoder_decoder', f'configs/{task}.py'),
            Run(f'{task}/prefix_lm', f'configs/{task}.py', {'model.arch': 'decoder'},
                match_params=True))),
        seeds=(0, 1, 2),
        overrides={'model.arch': 'encoder_decoder', 'model.encoder.num_layers': 3,
                   'model.encoder.num_segments': 1}),
    # Sources many windows long (the copy task's report padded with distractor sentences,
    # windows of 64 tokens): the memory on and off in each architecture, the
    # encoder-decoder cross-attending to the source's last window only, the prefix LM
    # reading source and target in one row. Without the memory only a trade in the last
    # window can be copied.
    'long_sources': Grid(
        runs=_long_sources(),
        seeds=(0, 1, 2),
        overrides={'model.arch': 'encoder_decoder', 'model.encoder.num_layers': 3,
                   'model.encoder.cross_attention': 'last_segment',
                   'model.segment_len': 64, 'model.num_segments': 1,
                   'train.batch_size': 8}),
    # Capacity: accuracy against the number of key-value pairs, three seeds.
    'capacity': Grid(runs=_capacity((6, 16, 32, 64), 1000), seeds=(0, 1, 2), overrides={}),
    # The whole grid, three seeds: every knob of both memories on recall, passkey and
    # selective copying across segments, and the core pointer and text rows.
    'full': Grid(
        runs=_memories(('delta', 'memory_off') + _DELTA_KNOBS
                       + ('bptt_truncated', 'one_layer', 'slots') + _SLOT_KNOBS, 1500)
        + _memories(('delta', 'slots', 'memory_off'), 1500, source='passkey')
        + _memories(('delta', 'slots', 'memory_off'), 1500, source='copy')
        + _POINTER_AND_TEXT,
        seeds=(0, 1, 2),
        overrides={}),
}
