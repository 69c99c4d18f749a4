"""What flows between segments and, inside a segment, between decoding steps."""

import flax.struct
import jax


@flax.struct.dataclass
class MemoryState:
  """Carried from segment to segment (the lax.scan carry; also the decoder's)."""
  memory: tuple[jax.Array, ...]  # one [B, S, d] float32 per memory layer
  pointer_keys: jax.Array  # [B, P, heads, d_p]: final-layer keys of the last P positions
  pointer_tokens: jax.Array  # [B, P] int32: their token ids
  pointer_valid: jax.Array  # [B, P] bool: False until that many positions were seen


@flax.struct.dataclass
class WindowCache:
  """Per-position buffers of the current segment: empty at each segment's start."""
  keys: tuple[jax.Array, ...]  # one [B, T, H, D] per layer
  values: tuple[jax.Array, ...]  # one [B, T, H, D] per layer
  hiddens: tuple[jax.Array, ...]  # one [B, T, d] per memory layer: what the write reads
  pointer_keys: jax.Array  # [B, T, heads, d_p]
  tokens: jax.Array  # [B, T] int32


@flax.struct.dataclass
class SegmentOutput:
  """Model outputs, per segment position. Leading axes [B, L] (a chunk) or [B, K, T]."""
  vocab_logits: jax.Array  # [..., L, V]
  log_gate: jax.Array | None = None  # [..., L] log g: the sentinel's share
  log_attn: jax.Array | None = None  # [..., L, heads, C] log a over the candidates
  successors: jax.Array | None = None  # [..., C] the token each candidate proposes
