"""MemGPT-JAX: the Memory-Gated Pointer-Transformer in JAX/Flax."""
