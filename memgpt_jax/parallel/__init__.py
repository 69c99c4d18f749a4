"""Many devices and many hosts: the device mesh, logical-axis sharding rules, the
jit and pmap partitioners that compile the train step, and jax.distributed set-up."""
