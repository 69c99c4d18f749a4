"""Many devices and many hosts: the device mesh, logical-axis sharding rules and
jax.distributed set-up. Nothing here knows what is trained: the train step is compiled
over the mesh by memgpt_jax.training.partitioner."""
