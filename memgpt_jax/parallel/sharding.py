"""Logical axis names -> mesh axes: the shardings of the train state and the batch.

The model names every parameter dimension ('vocab', 'embed', 'heads', 'kv', 'mlp',
'slots'; memgpt_jax/model/layers.py); 'batch' names the rows of the input batch.
config.mesh.rules maps names to mesh axes, first match wins, as in
flax.linen.logical_to_mesh_axes; a name with no rule is replicated. The default rules:

  batch  -> (data, fsdp)   every device of a (data, fsdp) group takes its own rows
  vocab  -> tensor         embedding rows and logits split over tensor
  heads  -> tensor         attention / memory heads: Megatron-style tensor parallel
  mlp    -> tensor         MLP hidden units: Megatron-style tensor parallel
  embed  -> fsdp           the model width of every weight: ZeRO-3 / FSDP

With model.scan_layers the layers' parameters are stacked on a leading 'layers' axis,
which no default rule names: every device keeps its shards of all layers.

A dimension that its mesh axes do not divide stays whole (e.g. the byte vocabulary
of 258 over tensor=4). The optimizer's moments are initialised from the boxed
parameters, so they carry the same names and get the same shardings.

Activations are placed the same way: while a step traces under activation_layout(),
the model's constrain() calls pin the residual stream to ('batch', None, None), rows
split, width whole. Left to itself, the partitioner splits activations like the FSDP
weights that produce them (by width), gathers them back for the next matmul, and
where two such splits disagree replicates the whole tensor to re-split it
(experiments/scale_check.py counts the bytes a step's collectives move).
"""

import contextlib
import math
import threading
from typing import NamedTuple

import flax.linen as nn
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import ml_collections

from memgpt_jax.errors import ConfigError
from memgpt_jax.parallel.mesh import AXES, axes_of

Rules = tuple[tuple[str, str | tuple[str, ...] | None], ...]


def logical_rules(mesh_config: ml_collections.ConfigDict) -> Rules:
  """config.mesh.rules as flax wants them (tuples: a JSON round trip gives lists)."""
  rules = []
  for rule in mesh_config.rules:
    if len(rule) != 2 or not isinstance(rule[0], str):
      raise ConfigError(f'mesh.rules entry {rule!r} is not a (logical name, mesh axes) pair')
    name, axes = rule
    axes = tuple(axes) if isinstance(axes, (list, tuple)) else axes
    for axis in axes_of(axes):
      if axis not in AXES:
        raise ConfigError(f'mesh.rules maps {name!r} to {axis!r}, which is not a mesh axis '
                          f'({", ".join(AXES)})')
    rules.append((name, axes))
  return tuple(rules)


def mesh_spec(names: tuple[str | None, ...], shape: tuple[int, ...], mesh: Mesh,
              rules: Rules) -> PartitionSpec:
  """The PartitionSpec of an array whose dimensions have these logical names."""
  spec = nn.logical_to_mesh_axes(names, rules)
  return PartitionSpec(*(
      axes if size % math.prod(mesh.shape[a] for a in axes_of(axes)) == 0 else None
      for size, axes in zip(shape, spec)))


def tree_shardings(boxed_tree, mesh: Mesh, rules: Rules):
  """NamedShardings for the unboxed version of a (possibly abstract) tree: from the
  names of its nn.LogicallyPartitioned leaves; plain leaves are replicated."""

  def sharding(leaf) -> NamedSharding:
    if isinstance(leaf, nn.LogicallyPartitioned):
      return NamedSharding(mesh, mesh_spec(leaf.names, leaf.value.shape, mesh, rules))
    return NamedSharding(mesh, PartitionSpec())

  return jax.tree.map(sharding, boxed_tree,
                      is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))


def batch_sharding(mesh: Mesh, rules: Rules) -> NamedSharding:
  """[B, N] token arrays: rows split as the rules split 'batch'."""
  return NamedSharding(mesh, nn.logical_to_mesh_axes(('batch', None), rules))


def bytes_per_device(tree) -> dict[jax.Device, int]:
  """How many bytes of the arrays in `tree` each local device holds."""
  held: dict[jax.Device, int] = {}
  for leaf in jax.tree.leaves(tree):
    for shard in leaf.addressable_shards:
      held[shard.device] = held.get(shard.device, 0) + shard.data.nbytes
  return held


class ActivationLayout(NamedTuple):
  """Where activations live while a step traces: the mesh and the rules that map
  their logical names (hashable: part of the step's static settings)."""
  mesh: Mesh
  rules: Rules


_layout = threading.local()


@contextlib.contextmanager
def activation_layout(layout: ActivationLayout | None):
  """Within: constrain() pins activations onto layout.mesh. None: it does nothing."""
  outer = getattr(_layout, 'value', None)
  _layout.value = layout
  try:
    yield
  finally:
    _layout.value = outer


def constrain(x: jax.Array, names: tuple[str | None, ...]) -> jax.Array:
  """x sharded as the active layout's rules map its dimensions' logical names (a
  dimension its mesh axes do not divide stays whole); x itself outside a layout."""
  layout = getattr(_layout, 'value', None)
  if layout is None:
    return x
  spec = mesh_spec(names, x.shape, layout.mesh, layout.rules)
  return jax.lax.with_sharding_constraint(x, NamedSharding(layout.mesh, spec))
