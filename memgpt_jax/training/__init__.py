"""Training: optimizer, pure step functions and their compilation over the devices,
the workdir (checkpoints, metrics, lock), evaluation, the loop."""
