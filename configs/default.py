"""Default MemGPT: delta memory and pointer on, byte-level, Python stdlib corpus.

Run:     make train        (= memgpt-train --config=configs/default.py --workdir=runs/default)
Reaches: validation 2.45 bits per byte after its 300 steps (1.2M tokens, 3 min on
         2 cores, up to 2.5x that on slower machines). Over three seeds, before
         training rows mixed the corpus: delta 3.04 +- 0.28, slots 2.91 +- 0.30,
         the plain GPT of equal parameters 3.49 +- 0.15 (experiments/results/text.md).
         Its sample has Python's words and punctuation, not yet its syntax.

Memory kind: 'delta'. On this text budget the two kinds are within the spread of the
seeds (both beat the plain GPT by ~0.5 bits per byte), while on recall across
segments the delta memory is at 100% to 16x the trained length and holds 64 pairs,
where the slot memory stays near 30% and at chance (experiments/results/core_recall.md,
capacity.md): the memory's job is to recall, and only the delta memory does.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  # Fine-tuning: a workdir (its latest checkpoint) or one checkpoints/<step> whose
  # parameters start this run; the optimizer state, data position and step start fresh.
  config.init_from = ''

  config.model = ml_collections.ConfigDict()
  # 'decoder': one causal stack (seq2seq inputs are its prefix) | 'encoder_decoder':
  # an encoder reads the source whole, segment by segment (model.encoder), and the
  # decoder cross-attends to it and copies from it.
  config.model.arch = 'decoder'
  config.model.d_model = 192
  config.model.num_layers = 4
  config.model.num_heads = 4
  config.model.mlp_dim = 512
  config.model.mlp_type = 'swiglu'  # 'swiglu' | 'gelu'
  config.model.norm_type = 'rmsnorm'  # 'rmsnorm' | 'layernorm'
  config.model.norm_epsilon = 1e-6  # added to the norms' variance (GPT-2 and Llama: 1e-5)
  # Biases of the linear maps: 'none' | 'qkv' (the attention's query, key and value:
  # Qwen2) | 'all' (attention and MLP, in and out: GPT-2).
  config.model.bias = 'none'
  config.model.position = 'rope'  # 'rope' | 'sinusoidal' | 'learned' | 'none'
  config.model.rope_base = 10_000.0
  config.model.segment_len = 128  # T: the attention window
  config.model.num_segments = 4  # K: segments per example, N = K * T
  config.model.tie_embeddings = True
  config.model.dropout_rate = 0.0
  # Weights start at N(0, init_std^2), residual outputs at init_std / sqrt(2L). 0.02 is
  # GPT-2's; small models learn their attention look-ups much faster near
  # d_model^-1/2 (experiments/results/recall_exploration.md).
  config.model.init_std = 0.02
  config.model.dtype = 'float32'  # compute dtype; params stay float32
  # What each block keeps for the backward pass: 'none' (everything: fastest, most
  # memory) | 'dots' (matmul outputs; the rest is recomputed) | 'full' (only its
  # input: least memory, one more forward pass).
  config.model.remat = 'none'
  # The blocks as one lax.scan over the depth (params stacked on a leading 'layers'
  # axis): trace and compile time stay flat in num_layers. Layers repeat in groups of
  # the fewest layers whose memory pattern repeats (every 4th layer: groups of 4).
  config.model.scan_layers = False
  # The window's softmax attention: 'fused' (jax.nn.dot_product_attention: cuDNN's
  # kernel on a GPU, 16-bit only) | 'einsum' (spelled out: the faster on a CPU) |
  # 'auto' (fused on a GPU for 16-bit queries of more than one token, einsum
  # otherwise). Both give the same outputs (tests/test_fast_paths.py).
  config.model.attention = 'auto'
  # Segments per iteration of the segment loop (lax.scan's unroll); 0: all K, no loop.
  # Unrolled trains 1.34x faster on a CPU (experiments/results/bench_cpu_fast_paths.md)
  # and compiles in time growing with K; 1 keeps compile time flat in K.
  config.model.segment_unroll = 0
  # seq2seq (data.inputs_key set): the input tokens of an example attend to each other
  # in both directions (within a segment); False keeps the prefix causal.
  config.model.bidirectional_prefix = True

  config.model.memory = ml_collections.ConfigDict()
  config.model.memory.enabled = True
  # 'delta': an associative matrix per head written by the delta rule (binds keys to
  # values); 'slots': S learned slots written by cross-attention (the first design).
  config.model.memory.kind = 'delta'
  config.model.memory.layers = 'all'  # 'all' or comma-separated layer indices, e.g. '1,3'
  config.model.memory.bptt_segments = 0  # 0: backprop through all K segments
  config.model.memory.slots = ml_collections.ConfigDict()
  config.model.memory.slots.num_slots = 16  # S
  config.model.memory.slots.gate = 'fixed'  # 'fixed' | 'gru' | 'none'
  config.model.memory.slots.gate_bias_init = 1.0  # fixed gate: g = sigmoid(b), b starts here
  config.model.memory.delta = ml_collections.ConfigDict()
  config.model.memory.delta.key_dim = 0  # d_k per head; 0: the head dimension
  config.model.memory.delta.value_dim = 0  # d_v per head; 0: the head dimension
  config.model.memory.delta.feature_map = 'silu'  # phi: 'silu' | 'elu_plus_one' | 'identity'
  config.model.memory.delta.key_shift = True  # key from [x_t ; x_{t-1}]; False: x_t alone
  # beta_t: 'learned' sigmoid(w_b x_t + b) | 'sparse' clip(w_b x_t + b, 0, 1) (exact
  # zeros) | 'fixed' 1 | 'pointer' (from the pointer's keys)
  config.model.memory.delta.write_strength = 'learned'
  # 'sparse' only: a write at full strength (logit >= 1) has no gradient through the clip,
  # so train.write_cost cannot price it out, however little it is worth; True passes the
  # cost's gradient through the clip's top (the memory still writes clip(.); the reported
  # write strength is the same).
  config.model.memory.delta.price_full_writes = False
  config.model.memory.delta.decay = 'none'  # 'none' | 'learned' (alpha_t, Gated DeltaNet)
  config.model.memory.delta.decay_init = 0.99  # learned decay: alpha_t starts near this
  # Read gate g mixing memory and attention per head: 'token' sigmoid(w_g x_t + b_g) |
  # 'head' sigmoid(b_g) | 'none' (the read is added) | 'scaled' (the read added times a
  # learned per-head scale that starts at 0: a pretrained model given a memory computes
  # at first exactly what it did).
  config.model.memory.delta.read_gate = 'token'
  config.model.memory.delta.read_gate_bias_init = -2.0  # g starts near 0.12: memory a minority
  # How the write runs over a segment: 'scan' (token by token) | 'chunked' (a
  # triangular solve per chunk of chunk_size tokens) | 'chunked_wy' (the chunks'
  # solves all at once, two products per chunk left in sequence: fewer kernels, more
  # FLOPs) | 'auto' ('chunked', the faster on a CPU).
  config.model.memory.delta.write_form = 'auto'
  config.model.memory.delta.chunk_size = 64

  config.model.pointer = ml_collections.ConfigDict()
  config.model.pointer.enabled = True
  config.model.pointer.num_heads = 1
  config.model.pointer.head_dim = 48
  config.model.pointer.cache_len = 128  # P: positions of earlier segments it may copy from
  # seq2seq: pointing at an input token (an encoder-decoder's source token too) copies
  # that token (pointer-generator); False: the token after it, as pointing anywhere
  # else does (induction).
  config.model.pointer.copy_inputs = True
  # How the pointer's mixture enters the output: 'sentinel' as it is; 'scaled' blended
  # in by a learned share s in [0, 0.99] that starts at exactly 0, so the output starts
  # as the vocabulary softmax alone (a pretrained model's; train.pointer_aux_loss
  # trains the pointer meanwhile).
  config.model.pointer.mixture = 'sentinel'

  # model.arch='encoder_decoder': the encoder reads a source of num_segments * T tokens,
  # bidirectionally within each segment, its memory (the decoder's kind, on the same
  # layer indices) carried from segment to segment. The decoder cross-attends to
  # 'all' of its outputs, or to the 'last_segment' and starts from the encoder's
  # final memory (for sources too long to attend to).
  config.model.encoder = ml_collections.ConfigDict()
  config.model.encoder.num_layers = 4
  config.model.encoder.num_segments = 4
  config.model.encoder.cross_attention = 'all'

  config.data = ml_collections.ConfigDict()
  config.data.source = 'pystdlib'  # 'pystdlib' | 'text' | 'tfds' | a synthetic task
  config.data.tfds_name = ''  # for source='tfds': a registered dataset, e.g. 'lm1b' or 'xsum'
  config.data.train_split = 'train'
  config.data.eval_split = 'validation'
  # Feature keys of the records (memgpt_jax/data/records.py): text_key for a causal LM;
  # inputs_key and targets_key make it seq2seq (a prefix LM with the loss on targets).
  config.data.text_key = 'text'
  config.data.inputs_key = ''
  config.data.targets_key = ''
  # A text_key holding a dialogue's turns: the feature saying who speaks first (0: the
  # user, 1: the assistant) writes them with data.chat below; '': joined by newlines.
  config.data.first_speaker_key = ''
  config.data.paths = ''  # for source='text': a file, a glob, or comma-separated of those
  config.data.validation_fraction = 0.1  # for source='text': the last share of the text
  config.data.tfds_data_dir = ''  # '' -> ~/tensorflow_datasets
  config.data.tokenizer = 'bytes'  # 'bytes' | 'sentencepiece' | 'huggingface'
  config.data.sentencepiece = ml_collections.ConfigDict()
  config.data.sentencepiece.vocab_size = 8000  # byte-fallback, pad, eos and unk ids included
  config.data.sentencepiece.model_type = 'unigram'  # 'unigram' | 'bpe'
  config.data.sentencepiece.max_train_chars = 20_000_000  # of the train split, to train it on
  # '' -> trained on the train split on first use and kept as <workdir>/tokenizer.model;
  # a path -> use that model (it needs pad and eos pieces).
  config.data.sentencepiece.model_file = ''
  config.data.sentencepiece.character_coverage = 1.0  # share of characters given own pieces
  # data.tokenizer='huggingface': a pretrained model's tokenizer.json, and which of its
  # tokens ends a document and pads a row ('' pad: the eos token).
  config.data.huggingface = ml_collections.ConfigDict()
  config.data.huggingface.tokenizer_file = ''
  config.data.huggingface.eos_token = ''
  config.data.huggingface.pad_token = ''
  config.data.shuffle_seed = 0
  # How rows are cut from documents: 'packed' (rows are independent: pieces of
  # documents packed side by side, the model's state fresh in every row) | 'streams'
  # (row b of a step continues row b of the step before through whole documents, and
  # the model's state is carried from step to step: memory spans whole documents;
  # causal-LM sources only, no mixture). See memgpt_jax/data/streams.py.
  config.data.layout = 'packed'
  # Training rows mix the corpus: causal-LM documents are read into windows of at least
  # this many tokens (one document at least), cut into pieces of at most N + 1 tokens
  # from a random offset, and packed in a random order: new cuts and order every epoch.
  # A window holds ~6 bytes per token. 0: documents whole, in the order of the records.
  config.data.shuffle_window_tokens = 1_000_000
  # Several tasks in one run: {name: {'rate': r, <data.* overrides>}}; rows of each
  # task are drawn in proportion to r and every task is evaluated on its own.
  config.data.mixture = ml_collections.ConfigDict()
  # seq2seq: score greedy targets at every evaluation: '' (off) | 'exact_match' |
  # 'summarization' (ROUGE-1/2/L + exact match) | 'translation' (BLEU + exact match).
  config.data.task_metrics = ''
  config.data.read_threads = 2
  # A synthetic task's rows (data.source in memgpt_jax/data/synthetic.py TASKS) train on
  # their 'answers' (the scored tokens) or on 'all' their tokens; evaluation scores
  # the answers either way.
  config.data.task_loss = 'answers'

  # How a conversation is written, in dialogue data (data.source='dialogue') and by
  # memgpt-chat: a user's turn is user + text + end_of_turn, a reply assistant + text +
  # end_of_turn (a reply ends where the model writes end_of_turn: one token).
  config.data.chat = ml_collections.ConfigDict()
  config.data.chat.user = 'User: '
  config.data.chat.assistant = 'Assistant: '
  config.data.chat.end_of_turn = '\n'
  # 0: turns run on across segment boundaries. N > 0: every exchange sits inside one
  # segment (the window's edge never cuts a turn, whose first half would otherwise
  # reach its second through the memory alone): generated dialogue is laid out so, and
  # memgpt-chat fills the rest of a segment with spaces before a user's turn when the
  # turn and N tokens of reply would not fit in it.
  config.data.chat.reply_room = 0

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 8  # global, over all devices and hosts
  config.train.num_steps = 300
  config.train.learning_rate = 2e-3
  config.train.warmup_steps = 30
  config.train.end_lr_ratio = 0.1  # cosine decays to learning_rate * this
  config.train.weight_decay = 0.1
  config.train.adam_b1 = 0.9
  config.train.adam_b2 = 0.95
  config.train.grad_clip_norm = 1.0
  # The batch is differentiated in this many micro-batches (the same update: their
  # gradients are summed, each weighted by its share of the tokens). 4 here: micro-
  # batches of 2 rows keep a step's activations within a CPU core's cache, and the
  # default step runs 1.12x faster than in one batch of 8 on a 2-core CPU
  # (experiments/results/bench_cpu_micro_batches.md). On an accelerator: 1.
  config.train.grad_accum_steps = 4
  config.train.z_loss = 1e-4
  # seq2seq with the pointer: weight of the coverage loss (See et al. 2017) that
  # discourages pointing at an input again; 0 turns it off.
  config.train.coverage_loss = 0.0
  # Weight of the pointer mixture's own cross-entropy in the loss: with
  # model.pointer.mixture='scaled' it teaches the pointer while its share is 0.
  config.train.pointer_aux_loss = 0.0
  # Delta memory: weight of the mean write strength beta in the loss; > 0 teaches it to
  # write only what pays (what a stream far longer than the rows needs, to not forget).
  config.train.write_cost = 0.0
  config.train.log_every = 20
  config.train.eval_every = 150
  config.train.eval_batches = 8
  # data.layout='streams': evaluation reads whole documents, the first this many of the
  # split (0: all), and reports bits per byte also by position in the document, in
  # buckets ending at these token positions (the last bucket: the rest).
  config.train.eval_documents = 0
  config.train.eval_position_buckets = (1024, 4096, 16384, 65536)
  config.train.generate_examples = 64  # data.task_metrics: eval records decoded
  config.train.generate_max_tokens = 64  # data.task_metrics: target tokens decoded at most
  config.train.checkpoint_every = 150
  config.train.keep_checkpoints = 3
  config.train.async_checkpointing = True
  config.train.stop_at_step = 0  # > 0: checkpoint and stop there (resume later); LR unchanged

  # Devices: one mesh (data, fsdp, tensor) over all devices of all hosts; -1 takes the
  # devices the other axes leave. See README "Running at scale".
  config.parallelism = 'jit'  # 'jit': one step jitted over the mesh | 'pmap': replicated
  config.mesh = ml_collections.ConfigDict()
  config.mesh.data = -1  # parameter replicas, each on its own rows of the batch
  config.mesh.fsdp = 1  # rows, parameters and optimizer state split over these (FSDP)
  config.mesh.tensor = 1  # attention heads and MLP units split over these (tensor parallel)
  # Logical axis name -> mesh axes (memgpt_jax/parallel/sharding.py); first match wins.
  config.mesh.rules = (
      ('batch', ('data', 'fsdp')),
      ('vocab', 'tensor'),
      ('heads', 'tensor'),
      ('mlp', 'tensor'),
      ('embed', 'fsdp'),
  )

  config.sample = ml_collections.ConfigDict()
  config.sample.prompt = 'def '
  config.sample.max_new_tokens = 200
  config.sample.temperature = 0.8
  config.sample.top_k = 0
  config.sample.top_p = 0.95
  config.sample.num_samples = 1
  return config
