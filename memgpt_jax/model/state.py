"""What flows between segments and, inside a segment, between decoding steps.

Every token carries a document id (packed rows hold several documents: nothing
crosses from one to another) and a prefix flag (the inputs of a seq2seq example:
attended bidirectionally, and copied by the pointer token for token).
"""

import flax.struct
import jax

# memory_doc of a row's learned initial memory: it holds nothing, so any document reads it.
FRESH_MEMORY = -1
# pointer_docs of a cache entry that was never written: matches no document.
EMPTY = -1


@flax.struct.dataclass
class DeltaState:
  """One layer's delta memory (model/delta_memory.py)."""
  matrix: jax.Array  # [B, H, d_k, d_v] float32: S, per head
  last_input: jax.Array  # [B, d] float32: the segment's last x, the next key's x_{t-1}


@flax.struct.dataclass
class MemoryState:
  """Carried from segment to segment (the lax.scan carry; also the decoder's)."""
  # One per memory layer: the slots [B, S, d] float32, or a DeltaState. With
  # model.scan_layers one of them, every array stacked: [memory layers, B, ...].
  memory: tuple[jax.Array | DeltaState, ...] | jax.Array | DeltaState
  memory_doc: jax.Array  # [B] int32: the document the memory holds (FRESH_MEMORY at start)
  pointer_keys: jax.Array  # [B, P, heads, d_p]: final-layer keys of the last P positions
  pointer_tokens: jax.Array  # [B, P] int32: their token ids
  pointer_docs: jax.Array  # [B, P] int32: their document ids (EMPTY until written)
  pointer_prefix: jax.Array  # [B, P] bool: whether they are seq2seq inputs


def row_axes(state: MemoryState, layers_stacked: bool) -> MemoryState:
  """`state` with each leaf replaced by the axis of its batch rows: 1 where the memory
  layers are stacked on axis 0 (model.scan_layers), else 0."""
  return jax.tree.map(lambda _: 0, state).replace(
      memory=jax.tree.map(lambda _: int(layers_stacked), state.memory))


@flax.struct.dataclass
class WindowCache:
  """Per-position buffers of the current segment: empty at each segment's start."""
  # Per layer; with model.scan_layers one array, the layers stacked on a leading axis.
  keys: tuple[jax.Array, ...] | jax.Array  # one [B, H, T, D] per layer
  values: tuple[jax.Array, ...] | jax.Array  # one [B, H, T, D] per layer
  # One [B, T, d] per memory layer, what its write reads: the layer's output (slots) or
  # its normed input (delta).
  hiddens: tuple[jax.Array, ...] | jax.Array
  pointer_keys: jax.Array  # [B, T, heads, d_p]
  tokens: jax.Array  # [B, T] int32
  docs: jax.Array  # [B, T] int32 document ids
  prefix: jax.Array  # [B, T] bool


@flax.struct.dataclass
class Source:
  """An encoder-decoder model's source as the decoder reads it: computed once per
  source (model.arch='encoder_decoder'; MemGPT.encode), read by every target segment."""
  keys: tuple[jax.Array, ...]  # one [B, H, S, D] per decoder layer: cross-attention keys
  values: tuple[jax.Array, ...]  # one [B, H, S, D] per decoder layer
  pointer_keys: jax.Array  # [B, S, heads, d_p]: copy candidates' keys
  tokens: jax.Array  # [B, S] int32: what pointing at position s copies
  docs: jax.Array  # [B, S] int32: the example (document id) of each source position


@flax.struct.dataclass
class SegmentOutput:
  """Model outputs, per segment position. Leading axes [B, L] (a chunk) or [B, K, T]."""
  vocab_logits: jax.Array | None  # [..., L, V]; None from the encoder
  log_gate: jax.Array | None = None  # [..., L] log g: the sentinel's share
  log_attn: jax.Array | None = None  # [..., L, heads, C] log a over the candidates
  proposals: jax.Array | None = None  # [..., C] the token each candidate proposes
  # [..., T] the delta memory's write strength beta per token, mean over memory layers
  # and heads (the full forward only: what train.write_cost charges for).
  write_strength: jax.Array | None = None
  # [..., L] the share s of the pointer's mixture in the output (pointer.mixture
  # 'scaled'; None: all of it).
  pointer_share: jax.Array | None = None
  # [..., L, d] the final normed hidden states: the encoder's output (None elsewhere).
  hidden: jax.Array | None = None
  # The candidates that come first and are source positions (an encoder-decoder's).
  num_sources: int = flax.struct.field(pytree_node=False, default=0)
