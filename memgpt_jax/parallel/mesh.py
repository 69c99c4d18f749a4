"""The device mesh of config.mesh: axes (data, fsdp, tensor), -1 for "the rest".

  data    replicas of the parameters, each on its own rows of the batch
  fsdp    the batch is split over it too, and so are parameters and optimizer state
          (gathered for each use: fully-sharded data parallel)
  tensor  attention heads and MLP hidden units are split over it (tensor parallel)

The tensor axis varies fastest, so its devices sit on one host and one interconnect.
"""

import math

import jax
from jax.sharding import AxisType, Mesh, NamedSharding
import ml_collections

from memgpt_jax.errors import ConfigError

AXES = ('data', 'fsdp', 'tensor')


def mesh_shape(mesh_config: ml_collections.ConfigDict, num_devices: int) -> dict[str, int]:
  """{'data': d, 'fsdp': f, 'tensor': t} with d * f * t == num_devices (-1 filled in)."""
  shape = {axis: int(mesh_config[axis]) for axis in AXES}
  for axis, size in shape.items():
    if size < 1 and size != -1:
      raise ConfigError(f'mesh.{axis}={size} must be at least 1, or -1 for the rest')
  rest = [axis for axis, size in shape.items() if size == -1]
  if len(rest) > 1:
    raise ConfigError(f'mesh.{rest[0]} and mesh.{rest[1]} are both -1: at most one axis '
                      'takes the rest of the devices')
  fixed = math.prod(size for size in shape.values() if size != -1)
  if rest and num_devices % fixed == 0:
    shape[rest[0]] = num_devices // fixed
  layout = ' x '.join(f'{axis}={size}' for axis, size in shape.items())
  if math.prod(shape.values()) != num_devices:
    raise ConfigError(f'mesh {layout} does not fit the {num_devices} devices: '
                      'their product must equal the device count')
  return shape


def make_mesh(mesh_config: ml_collections.ConfigDict,
              devices: list[jax.Device] | None = None) -> Mesh:
  """The mesh over `devices` (default: every device of every process), laid out for
  the hardware's topology by jax.make_mesh."""
  devices = jax.devices() if devices is None else devices
  shape = mesh_shape(mesh_config, len(devices))
  return jax.make_mesh(tuple(shape.values()), AXES, axis_types=(AxisType.Auto,) * len(AXES),
                       devices=devices)


def describe(mesh: Mesh) -> str:
  return ' x '.join(f'{axis}={size}' for axis, size in mesh.shape.items())


def check_batch(batch_size: int, sharding: NamedSharding, what: str = 'train.batch_size'):
  """ConfigError unless the batch (or `what` has `batch_size` rows) splits evenly over
  its devices and every row lives on one process (each process feeds only the rows its
  own data shard reads)."""
  shape = (batch_size, 1)  # [B, N] token arrays; only the rows matter here
  splits = math.prod(sharding.mesh.shape[axis] for axis in axes_of(sharding.spec[0]))
  if batch_size % splits:
    axes = ' x '.join(f'mesh.{axis}' for axis in axes_of(sharding.spec[0]))
    raise ConfigError(f'{what}={batch_size} is not divisible by {axes} = '
                      f'{splits}: every device takes an equal share of the rows')
  owners: dict[tuple, set[int]] = {}
  for device, index in sharding.devices_indices_map(shape).items():
    owners.setdefault(index[0].indices(batch_size), set()).add(device.process_index)
  if any(len(processes) > 1 for processes in owners.values()):
    raise ConfigError(f'mesh {describe(sharding.mesh)}: some batch rows would be shared by '
                      'devices of several processes; keep mesh.tensor within one host')


def axes_of(entry) -> tuple[str, ...]:
  """The mesh axes of one PartitionSpec entry (None, 'a' or ('a', 'b')) as a tuple."""
  if entry is None:
    return ()
  return (entry,) if isinstance(entry, str) else tuple(entry)
