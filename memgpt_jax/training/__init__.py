"""Training: optimizer, pure step functions, checkpoints, metrics, the loop."""
