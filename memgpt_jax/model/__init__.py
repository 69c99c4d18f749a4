"""The Memory-Gated Pointer-Transformer, one concern per module."""
