"""MemGPT: a causal Transformer run over K segments of T tokens with a carried memory.

    state = initial_state()                       # empty memory and pointer cache
    for each segment (lax.scan, static shapes; run_segments):
      output, window = process_chunk(segment, start=0, state, empty window)
      state = end_segment(state, window)          # memory write + pointer cache push

Every token has a document id and a prefix flag (model/state.py): attention, the
memory and the pointer never cross from one document to another, so packed rows
train like separate ones, and seq2seq inputs form a prefix.

Decoding calls the same `process_chunk` one token at a time (start = position in the
segment) and `end_segment` after every T tokens, so it matches the full forward pass.
With memory off, pointer off and K = 1 this is a plain GPT decoder.

With model.arch='encoder_decoder' an encoder (a MemGPT of its own depth, every token
a bidirectional input, the embedding shared) first reads the source segment by
segment, its memory carried across them (`encode`). Each decoder layer cross-attends
to its outputs, and the pointer copies source tokens besides its own candidates.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from memgpt_jax.model.block import BlockGroup, block_class
from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.layers import Dense, Norm, default_init
from memgpt_jax.model.delta_memory import DeltaMemory
from memgpt_jax.model.pointer import PointerHeads, candidates, source_proposals
from memgpt_jax.model.positions import AdditivePositions
from memgpt_jax.model.slot_memory import SlotMemory
from memgpt_jax.model.attention import window_mask
from memgpt_jax.model.attention import SourceKeysValues
from memgpt_jax.model.state import (EMPTY, FRESH_MEMORY, MemoryState, SegmentOutput, Source,
                                    WindowCache)
from memgpt_jax.parallel.sharding import constrain


def init_tokens(cfg: ModelConfig, batch_size: int = 1) -> jax.Array:
  """What init runs on: one segment of zeros [batch_size, T]. The parameters do not
  depend on the number of segments, and init then traces one segment, not K unrolled."""
  return jnp.zeros((batch_size, cfg.segment_len), jnp.int32)


# model.scan_layers' parameter collections: each leaf stacks every layer's on a leading axis.
LAYER_STACKS = ('block_groups', 'memories')


def per_layer_ndim(path: tuple, param: jax.Array) -> int:
  """A parameter's number of axes in one layer, at `path` in the parameter tree:
  one fewer than its own where model.scan_layers stacks the layers."""
  return param.ndim - any(getattr(key, 'key', None) in LAYER_STACKS for key in path)


def stacked_memories(memory: type[nn.Module], cfg: ModelConfig) -> nn.Module:
  """One memory module for every memory layer, parameters and states stacked on a
  leading axis: the writes run side by side (model.scan_layers)."""
  # __call__: (state, inputs) per layer; the rest (which tokens to write, ...) shared.
  shared_inputs = 2 if memory is SlotMemory else 4
  stacked = dict(variable_axes={'params': 0}, split_rngs={'params': True},
                 axis_size=cfg.num_memory_layers, metadata_params={nn.PARTITION_NAME: 'layers'})
  return nn.vmap(memory, methods={
      '__call__': dict(stacked, in_axes=(0, 0) + (None,) * shared_inputs),
      'initial_state': dict(stacked, in_axes=None)})(cfg)


def empty_window(cfg: ModelConfig, batch_size: int) -> WindowCache:
  """Zeroed buffers for one segment; the attention mask hides unwritten positions."""
  window = (batch_size, cfg.segment_len)
  heads = (batch_size, cfg.num_heads, cfg.segment_len, cfg.head_dim)  # [B, H, T, D]
  zeros = lambda shape, dtype=cfg.compute_dtype: jnp.zeros(shape, dtype)
  pointer_heads = cfg.pointer_heads if cfg.pointer_enabled else 0
  if cfg.scan_layers:  # one array, layers on the leading axis
    per_layer = lambda count, shape: zeros((count, *shape))
  else:
    per_layer = lambda count, shape: tuple(zeros(shape) for _ in range(count))
  return WindowCache(
      keys=per_layer(cfg.num_layers, heads),
      values=per_layer(cfg.num_layers, heads),
      hiddens=per_layer(cfg.num_memory_layers, (*window, cfg.d_model)),
      pointer_keys=zeros((*window, pointer_heads, cfg.pointer_head_dim), jnp.float32),
      tokens=zeros(window, jnp.int32),
      docs=zeros(window, jnp.int32),
      prefix=zeros(window, bool),
  )


def unrolled_layers(variables: dict, cfg: ModelConfig) -> dict:
  """The variables of a model with cfg.scan_layers, laid out for the same model with
  its layers unrolled: row r of block_j becomes blocks_{r p + j} (p = cfg.layer_period),
  row i of memories memories_i. The two compute the same (tests/test_fast_paths.py)."""
  params = dict(variables['params'])
  groups, memories = params.pop('block_groups'), params.pop('memories', None)
  row = lambda tree, index: jax.tree.map(lambda x: x[index], tree)
  for layer in range(cfg.num_layers):
    params[f'blocks_{layer}'] = row(groups[f'block_{layer % cfg.layer_period}'],
                                    layer // cfg.layer_period)
  for index in range(cfg.num_memory_layers):
    params[f'memories_{index}'] = row(memories, index)
  return {**variables, 'params': params}


class MemGPT(nn.Module):
  cfg: ModelConfig
  deterministic: bool = True
  shared_embed: nn.Embed | None = None  # the encoder's: its decoder's table

  def setup(self):
    cfg = self.cfg
    if self.shared_embed is None:
      self.embed = nn.Embed(
          cfg.vocab_size, cfg.d_model, dtype=cfg.compute_dtype,
          embedding_init=nn.with_logical_partitioning(default_init(cfg), ('vocab', 'embed')))
    else:
      self.embed = self.shared_embed
    if cfg.arch == 'encoder_decoder':
      self.encoder = MemGPT(cfg.encoder_config, self.deterministic, self.embed)
      self.source_keys_values = [SourceKeysValues(cfg) for _ in range(cfg.num_layers)]
    self.positions = AdditivePositions(cfg)
    memory = DeltaMemory if cfg.memory_kind == 'delta' else SlotMemory
    if cfg.scan_layers:
      self.block_groups = nn.scan(
          BlockGroup, variable_axes={'params': 0}, split_rngs={'params': True, 'dropout': True},
          in_axes=(0, nn.broadcast, nn.broadcast, nn.broadcast),
          length=cfg.num_layers // cfg.layer_period,
          metadata_params={nn.PARTITION_NAME: 'layers'})(cfg, self.deterministic)
      self.memories = stacked_memories(memory, cfg) if cfg.num_memory_layers else None
    else:
      self.blocks = [block_class(cfg)(cfg, cfg.has_memory(layer), self.deterministic)
                     for layer in range(cfg.num_layers)]
      self.memories = [memory(cfg) for _ in range(cfg.num_memory_layers)]
    self.final_norm = Norm(cfg)
    self.dropout = nn.Dropout(cfg.dropout_rate, deterministic=self.deterministic)
    if not cfg.tie_embeddings:
      self.lm_head = Dense(
          cfg.vocab_size, use_bias=False, dtype=cfg.compute_dtype,
          kernel_init=nn.with_logical_partitioning(default_init(cfg), ('embed', 'vocab')))
    if cfg.pointer_enabled:
      self.pointer = PointerHeads(cfg)

  def __call__(
      self,
      tokens: jax.Array,  # [B, N] with N a multiple of T
      doc_ids: jax.Array | None = None,  # [B, N] int32; None: one document per row
      prefix: jax.Array | None = None,  # [B, N] bool; None: no seq2seq inputs
      # model.arch='encoder_decoder': the examples' sources [B, S] (S a multiple of T)
      # and their document ids (those of the targets they go with; None: one per row).
      source_tokens: jax.Array | None = None,
      source_docs: jax.Array | None = None,
  ) -> SegmentOutput:
    """-> outputs laid out [B, K, T, ...]."""
    batch = tokens.shape[0]
    if self.cfg.arch != 'encoder_decoder':
      return self.run_segments(tokens, self.initial_state(batch), doc_ids, prefix)[1]
    if source_tokens is None:
      if not self.is_initializing():
        raise ValueError("model.arch='encoder_decoder' needs source_tokens")
      source_tokens = jnp.zeros_like(tokens[:, :self.cfg.segment_len])  # init: one segment
    if doc_ids is None:
      doc_ids = jnp.ones_like(tokens)
    source, state = self.encode(source_tokens, source_docs)
    return self.run_segments(tokens, state, doc_ids, prefix, source)[1]

  def encode(self, source_tokens: jax.Array,
             source_docs: jax.Array | None = None) -> tuple[Source, MemoryState]:
    """The encoder over the sources [B, S] -> (what every target segment reads, the
    decoder's starting state: fresh, or with cross_attention 'last_segment' holding the
    encoder's final memory, the only trace of the source before its last segment)."""
    cfg = self.cfg
    batch = source_tokens.shape[0]
    if source_docs is None:
      source_docs = jnp.ones_like(source_tokens)
    encoder_state, output = self.encoder.run_segments(
        source_tokens, self.encoder.initial_state(batch), source_docs,
        jnp.ones(source_tokens.shape, bool))
    encoded = output.hidden.reshape(batch, -1, cfg.d_model)  # [B, S, d]
    state = self.initial_state(batch)
    if cfg.cross_attention == 'last_segment':
      keep = lambda x: x[:, -cfg.segment_len:]
      encoded, source_tokens, source_docs = map(keep, (encoded, source_tokens, source_docs))
      state = state.replace(memory=encoder_state.memory, memory_doc=encoder_state.memory_doc)
    keys, values = zip(*(project(encoded) for project in self.source_keys_values))
    pointer_keys = (self.pointer.keys(encoded) if cfg.pointer_enabled else
                    jnp.zeros((*encoded.shape[:2], 0, cfg.pointer_head_dim)))
    return Source(keys, values, pointer_keys, source_proposals(
        source_tokens, source_docs, cfg.pointer_copy_inputs), source_docs), state

  def run_segments(
      self,
      tokens: jax.Array,  # [B, N] with N a multiple of T
      state: MemoryState,  # where the rows stand: initial_state() for fresh rows
      doc_ids: jax.Array | None = None,
      prefix: jax.Array | None = None,
      source: Source | None = None,  # model.arch='encoder_decoder': from `encode`
  ) -> tuple[MemoryState, SegmentOutput]:
    """The segment scan from `state`: -> (the state after the last segment, outputs
    [B, K, T, ...]). A stream too long for one call runs as consecutive calls, each
    from the state the one before returned."""
    cfg = self.cfg
    batch, length = tokens.shape
    if length % cfg.segment_len:
      raise ValueError(f'sequence length {length} is not a multiple of '
                       f'segment_len {cfg.segment_len}')
    # Rows of one document and no seq2seq inputs: every segment's mask is plain causality.
    plain_causal = doc_ids is None and prefix is None
    doc_ids = jnp.ones_like(tokens) if doc_ids is None else doc_ids
    prefix = jnp.zeros(tokens.shape, bool) if prefix is None else prefix.astype(bool)
    num_segments = length // cfg.segment_len
    by_segment = lambda x: x.reshape(batch, num_segments, cfg.segment_len).swapaxes(0, 1)

    def step(model: 'MemGPT', state: MemoryState, inputs):
      segment, segment_docs, segment_prefix, index = inputs
      if cfg.bptt_segments:  # truncated BPTT: cut the memory's gradient every B segments
        cut = index % cfg.bptt_segments == 0
        state = state.replace(memory=jax.tree.map(
            lambda m: jnp.where(cut, jax.lax.stop_gradient(m), m), state.memory))
      output, window = model.process_chunk(segment, 0, state, empty_window(cfg, batch),
                                           segment_docs, segment_prefix, plain_causal,
                                           source)
      state, write_strength = model.write_segment(state, window)
      return state, output.replace(write_strength=write_strength)

    unroll = min(cfg.segment_unroll or num_segments, num_segments)  # segments per iteration
    # Outside init, flax need not trace the body a second time to find the broadcast
    # parameters (init creates them there): a fifth of the train step's tracing time.
    scan = nn.scan(step, variable_broadcast='params', unroll=unroll,
                   split_rngs={'params': False, 'dropout': True},
                   check_constancy_invariants=self.is_initializing())
    state, outputs = scan(self, state,
                          (by_segment(tokens), by_segment(doc_ids), by_segment(prefix),
                           jnp.arange(num_segments)))
    return state, jax.tree.map(lambda x: jnp.moveaxis(x, 0, 1), outputs)

  def initial_state(self, batch_size: int) -> MemoryState:
    cfg = self.cfg
    cache_len = cfg.pointer_cache_len if cfg.pointer_enabled else 0
    heads = cfg.pointer_heads if cfg.pointer_enabled else 0
    if cfg.scan_layers:
      memory = self.memories.initial_state(batch_size) if self.memories else ()
    else:
      memory = tuple(memory.initial_state(batch_size) for memory in self.memories)
    return MemoryState(
        memory=memory,
        memory_doc=jnp.full((batch_size,), FRESH_MEMORY, jnp.int32),
        pointer_keys=jnp.zeros((batch_size, cache_len, heads, cfg.pointer_head_dim)),
        pointer_tokens=jnp.zeros((batch_size, cache_len), jnp.int32),
        pointer_docs=jnp.full((batch_size, cache_len), EMPTY, jnp.int32),
        pointer_prefix=jnp.zeros((batch_size, cache_len), bool),
    )

  def process_chunk(
      self,
      tokens: jax.Array,  # [B, L]: segment positions start .. start + L - 1
      start: jax.Array | int,
      state: MemoryState,
      window: WindowCache,
      doc_ids: jax.Array,  # [B, L] int32
      prefix: jax.Array,  # [B, L] bool
      # True: the chunk is a whole segment of one document with no prefix, whose mask
      # is plain causality (attention need not build it).
      plain_causal: bool = False,
      source: Source | None = None,  # model.arch='encoder_decoder': from `encode`
  ) -> tuple[SegmentOutput, WindowCache]:
    cfg = self.cfg
    length = tokens.shape[1]
    positions = start + jnp.arange(length)
    write = lambda buffer, chunk, axis=1: jax.lax.dynamic_update_slice_in_dim(
        buffer, chunk.astype(buffer.dtype), start, axis=axis)
    window = window.replace(tokens=write(window.tokens, tokens),
                            docs=write(window.docs, doc_ids),
                            prefix=write(window.prefix, prefix))
    mask = None if plain_causal else window_mask(start, doc_ids, prefix, window.docs,
                                                 window.prefix, cfg.bidirectional_prefix)
    sees_memory = (state.memory_doc[:, None] == doc_ids) | (
        state.memory_doc[:, None] == FRESH_MEMORY)  # [B, L]
    # The lookup reads whole rows of the table (gathered over fsdp first): its
    # output is then split by rows like the rest of the residual stream.
    table = constrain(self.embed.embedding, ('vocab', None)).astype(cfg.compute_dtype)
    x = self.dropout(jnp.take(table, tokens, axis=0) + self.positions(positions))  # [B, L, d]
    # [B, 1, L, S]: a target token sees its own example's source
    source_mask = None if source is None else (doc_ids[:, :, None] == source.docs[:, None, :])[
        :, None]
    if cfg.scan_layers:
      groups = cfg.num_layers // cfg.layer_period
      by_group = lambda tree: jax.tree.map(  # [n, ...] -> [groups, n / groups, ...]
          lambda a: a.reshape(groups, a.shape[0] // groups, *a.shape[1:]), tree)
      by_layer = lambda a: a.reshape(-1, *a.shape[2:])  # and back
      memory = by_group(state.memory) if self.memories else None
      x, (keys, values, written) = self.block_groups(
          x, (by_group(window.keys), by_group(window.values), memory), start, sees_memory,
          mask)
      keys, values = by_layer(keys), by_layer(values)
      hiddens = window.hiddens if written is None else write(
          window.hiddens, by_layer(written), axis=2)
    else:
      memory_slot = {layer: i for i, layer in enumerate(cfg.memory_layers)}
      keys, values, hiddens = [], [], []
      for layer, block in enumerate(self.blocks):
        slot = memory_slot.get(layer) if cfg.memory_enabled else None
        memory = state.memory[slot] if slot is not None else None
        cross = None if source is None else (source.keys[layer], source.values[layer],
                                             source_mask)
        x, layer_keys, layer_values, written = block(
            x, start, memory, sees_memory, window.keys[layer], window.values[layer], mask,
            cross)
        keys.append(layer_keys)
        values.append(layer_values)
        if slot is not None:
          hiddens.append(write(window.hiddens[slot], written))
      keys, values, hiddens = tuple(keys), tuple(values), tuple(hiddens)
    hidden = self.final_norm(x)
    window = window.replace(keys=keys, values=values, hiddens=hiddens)
    if cfg.arch == 'encoder':
      return SegmentOutput(vocab_logits=None, hidden=hidden), window
    if cfg.tie_embeddings:  # on [B * L, d] rows: see layers.flat_dot_general
      logits = self.embed.attend(hidden.reshape(-1, cfg.d_model)).reshape(
          *hidden.shape[:-1], cfg.vocab_size)
    else:
      logits = self.lm_head(hidden)
    if not cfg.pointer_enabled:
      return SegmentOutput(vocab_logits=logits), window

    window = window.replace(pointer_keys=write(window.pointer_keys, self.pointer.keys(hidden)))
    keys, valid, proposals = candidates(state, window, doc_ids, positions,
                                        cfg.pointer_copy_inputs)
    if source is not None:  # pointing at a source position copies its token
      keys = jnp.concatenate([source.pointer_keys, keys], axis=1)
      valid = jnp.concatenate([source_mask[:, 0], valid], axis=2)
      proposals = jnp.concatenate([source.tokens, proposals], axis=1)
    log_gate, log_attn, share = self.pointer(hidden, keys, valid)
    return SegmentOutput(logits, log_gate, log_attn, proposals, pointer_share=share,
                         num_sources=0 if source is None else source.tokens.shape[1]), window

  def end_segment(self, state: MemoryState, window: WindowCache) -> MemoryState:
    """After T tokens: write every memory layer, push the segment into the pointer cache.

    The memory goes on with the document of the segment's last token: it writes that
    document's tokens only, onto an empty (initial) memory if it held another one.
    """
    return self.write_segment(state, window)[0]

  def write_segment(self, state: MemoryState,
                    window: WindowCache) -> tuple[MemoryState, jax.Array | None]:
    """end_segment, and the delta memory's write strength [B, T] (None for slots)."""
    last_doc = window.docs[:, -1]  # [B]
    written = window.docs == last_doc[:, None]  # [B, T]
    continues = (state.memory_doc == last_doc) | (state.memory_doc == FRESH_MEMORY)
    delta = self.cfg.memory_kind == 'delta'
    shared = (written, continues)
    if delta:
      # The key of token t also reads token t - 1, when that is of t's document (the
      # token before a segment is of memory_doc, the previous segment's last).
      previous_docs = jnp.concatenate([state.memory_doc[:, None], window.docs[:, :-1]], 1)
      shared += (previous_docs == window.docs, window.pointer_keys)
    memory, betas = state.memory, None  # betas: the delta writes' [layers, B, T, H]
    if self.memories and self.cfg.scan_layers:  # stacked: [layers, ...]
      memory = self.memories(state.memory, window.hiddens, *shared)
      if delta:
        memory, betas = memory
    elif self.memories:
      memory = tuple(layer(layer_state, hiddens, *shared) for layer, layer_state, hiddens
                     in zip(self.memories, state.memory, window.hiddens))
      if delta:
        betas = jnp.stack([beta for _, beta in memory])
        memory = tuple(layer_state for layer_state, _ in memory)
    # [B, T]: mean over layers and heads
    write_strength = None if betas is None else jnp.mean(betas, (0, -1))
    state = state.replace(memory=memory, memory_doc=last_doc)
    cache_len = state.pointer_tokens.shape[1]
    if cache_len == 0:
      return state, write_strength
    keep_last = lambda old, new: jnp.concatenate([old, new], axis=1)[:, -cache_len:]
    return state.replace(
        pointer_keys=keep_last(state.pointer_keys,
                               jax.lax.stop_gradient(window.pointer_keys)),
        pointer_tokens=keep_last(state.pointer_tokens, window.tokens),
        pointer_docs=keep_last(state.pointer_docs, window.docs),
        pointer_prefix=keep_last(state.pointer_prefix, window.prefix),
    ), write_strength
