"""How the train step runs on many devices: jit over the mesh (memgpt_jax.parallel's
mesh and sharding rules), or classic pmap.

Both share steps.train_step and keep two layouts of the train state apart: the
*global* one (jax.Arrays over the mesh: what checkpoints store and evaluation
reads) and the one the step works on. For jit they are the same: parameters and
optimizer state sharded by the logical-axis rules. pmap keeps one full copy per
local device, stacked on a leading axis, and averages gradients over the devices.
"""

import functools

import flax.jax_utils
import flax.linen as nn
import jax
import jax.extend
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import ml_collections
import numpy as np
import optax

from memgpt_jax.errors import ConfigError
from memgpt_jax.model.transformer import MemGPT
from memgpt_jax.parallel import mesh as mesh_lib
from memgpt_jax.parallel import sharding as sharding_lib
from memgpt_jax.training import steps
from memgpt_jax.training.optimizer import Schedule, make_schedule

_PMAP_AXIS = 'devices'


class JitPartitioner:
  """One jitted step over the (data, fsdp, tensor) mesh, state sharded by the rules."""

  def __init__(self, config: ml_collections.ConfigDict, model: MemGPT,
               optimizer: optax.GradientTransformation,
               devices: list[jax.Device] | None = None):
    self.mesh = mesh_lib.make_mesh(config.mesh, devices)
    self.rules = sharding_lib.logical_rules(config.mesh)
    self.batch_sharding = sharding_lib.batch_sharding(self.mesh, self.rules)
    mesh_lib.check_batch(config.train.batch_size, self.batch_sharding)
    mesh_lib.check_batch(config.train.batch_size // config.train.grad_accum_steps,
                         self.batch_sharding, 'a micro-batch (train.batch_size / '
                         'train.grad_accum_steps)')
    # data.layout='streams': the train state carries every stream's model state.
    carry_rows = config.train.batch_size if config.data.layout == 'streams' else 0
    self.state_shardings, self.abstract_state, self._init = _state_programs(
        model, optimizer, self.mesh, self.rules, carry_rows)
    self._carry_axes = steps.carry_axes(model, self.abstract_state.carry)
    # Activations split over the mesh like the batch rows (constrain() in the model),
    # so that the compiler never splits them like the weights; one device: nothing to split.
    self.activation_layout = (sharding_lib.ActivationLayout(self.mesh, self.rules)
                              if self.mesh.size > 1 else None)
    self._rng = jax.random.PRNGKey(config.seed)
    self._schedule = self._place_schedule(make_schedule(config.train))
    self._settings = steps.StepSettings(
        model=model, optimizer=optimizer, z_loss=config.train.z_loss,
        coverage_loss=config.train.coverage_loss, write_cost=config.train.write_cost,
        grad_accum_steps=config.train.grad_accum_steps,
        layout=self.activation_layout, pointer_aux_loss=config.train.pointer_aux_loss)
    self._step = self._compile()

  def _compile(self):
    """The jitted step. The settings are a static argument of each call, so its
    programs are cached by value: a second partitioner of the same setup (a resume,
    another seed, another learning-rate schedule) traces and compiles nothing again."""
    replicated = NamedSharding(self.mesh, PartitionSpec())
    return jax.jit(steps.train_step, static_argnums=3,
                   in_shardings=(self.state_shardings, self.batch_sharding, replicated),
                   out_shardings=(self.state_shardings, replicated), donate_argnums=0)

  def _place_schedule(self, schedule: Schedule) -> Schedule:
    """Its host numbers, the same in every process -> arrays on every device of the mesh."""
    replicated = NamedSharding(self.mesh, PartitionSpec())
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(
        replicated, np.asarray(x, np.float32)), schedule)

  def global_batch(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """This process's rows -> arrays over the whole mesh, split as the rules say."""
    return {k: jax.make_array_from_process_local_data(self.batch_sharding, v)
            for k, v in batch.items()}

  def init_state(self) -> steps.TrainState:
    """Step 0 in the global layout (from_global makes it the step's); each device
    computes only its own shards."""
    return self._init(self._rng)

  def carry_shardings(self, model: MemGPT, rows: int):
    """Where a model state of `rows` streams lives: rows split like the batch's."""
    abstract = jax.eval_shape(
        lambda params: model.apply({'params': params}, rows, method=MemGPT.initial_state),
        self.abstract_state.params)
    return _carry_shardings(model, abstract, self.mesh, self.rules)

  def to_global(self, state: steps.TrainState) -> steps.TrainState:
    return state

  def from_global(self, state: steps.TrainState) -> steps.TrainState:
    return state

  def train_step(self, state: steps.TrainState, batch: dict[str, np.ndarray]):
    """-> (state, metrics) after one update on this process's rows of the global batch."""
    return self._step(state, self.global_batch(batch), self._schedule, self._settings)

  def run_compiled(self, compiled: jax.stages.Compiled, state: steps.TrainState,
                   batch: dict[str, np.ndarray]):
    """train_step through a program built from trace_step(...).lower().compile(options):
    the same step, with XLA options of the caller's (a profile's, say)."""
    return compiled(state, self.global_batch(batch), self._schedule)

  def trace_step(self, batch_size: int, seq_len: int, source_len: int = 0) -> jax.stages.Traced:
    """The train step traced on abstract inputs (a global batch of token rows, no
    documents or prefix; an encoder-decoder's sources of `source_len` tokens): its
    .lower().compile() builds the program without running it."""
    rows = lambda length, dtype: jax.ShapeDtypeStruct((batch_size, length), dtype,
                                                      sharding=self.batch_sharding)
    tokens = rows(seq_len, np.int32)
    batch = {'inputs': tokens, 'targets': tokens, 'mask': rows(seq_len, np.float32)}
    if source_len:
      batch['encoder_inputs'] = rows(source_len, np.int32)
    return self._step.trace(self.abstract_state, batch, self._schedule, self._settings)


class PmapPartitioner(JitPartitioner):
  """Replicated data parallelism: pmap over the local devices of every process.

  Checkpoints and evaluation use the global layout of a pure data-parallel mesh,
  so a pmap checkpoint restores under jit on any mesh, and the reverse.
  """

  def __init__(self, config: ml_collections.ConfigDict, model: MemGPT,
               optimizer: optax.GradientTransformation):
    if config.mesh.fsdp != 1 or config.mesh.tensor != 1:
      raise ConfigError("parallelism='pmap' keeps a full copy of the state on every "
                        'device: set mesh.fsdp=1 and mesh.tensor=1 (or use jit)')
    super().__init__(config, model, optimizer)
    local = jax.local_device_count()
    rows = config.train.batch_size // jax.process_count()
    if rows % (local * config.train.grad_accum_steps):
      raise ConfigError(f'train.batch_size={config.train.batch_size} does not split into '
                        f'equal rows for the {local} local devices of each of the '
                        f'{jax.process_count()} processes and their '
                        f'train.grad_accum_steps={config.train.grad_accum_steps} micro-batches')

  def _place_schedule(self, schedule: Schedule) -> Schedule:
    """Host numbers: pmap hands them to every local device (in_axes None)."""
    return schedule

  def _compile(self):
    # Inside pmap each device holds whole arrays: nothing for constrain() to place.
    settings = self._settings._replace(layout=None)
    return jax.pmap(functools.partial(steps.train_step, settings=settings,
                                      axis_name=_PMAP_AXIS),
                    axis_name=_PMAP_AXIS, in_axes=(0, 0, None), donate_argnums=0)

  def to_global(self, state: steps.TrainState) -> steps.TrainState:
    """Stacked per-device copies -> one replicated array over the mesh; the carried
    streams' rows (each device's own) -> this process's rows of the global batch."""
    carry = state.carry
    if carry is not None:
      carry = jax.tree.map(
          lambda x, axis, sharding: jax.make_array_from_process_local_data(
              sharding, _merge_devices(np.asarray(x), axis)),
          carry, self._carry_axes, self.state_shardings.carry)
    state = jax.tree.map(
        lambda x, sharding: jax.make_array_from_single_device_arrays(
            x.shape[1:], sharding, [shard.data[0] for shard in x.addressable_shards]),
        state.replace(carry=None), self.state_shardings.replace(carry=None))
    return state.replace(carry=carry)

  def from_global(self, state: steps.TrainState) -> steps.TrainState:
    """A replicated array over the mesh -> one copy per local device, stacked and
    sharded as the pmapped step returns it (another layout would compile it again);
    the carried streams' rows dealt to the devices as the batch's are."""
    local_copy = jax.tree.map(lambda x: x.addressable_shards[0].data, state.replace(carry=None))
    stacked = flax.jax_utils.replicate(local_copy, jax.local_devices(), axis_name=_PMAP_AXIS)
    if state.carry is None:
      return stacked
    devices = Mesh(np.array(jax.local_devices()), (_PMAP_AXIS,))
    per_device = NamedSharding(devices, PartitionSpec(_PMAP_AXIS))
    carry = jax.tree.map(
        lambda x, axis: jax.device_put(
            _split_devices(_process_rows(x, axis), axis, jax.local_device_count()), per_device),
        state.carry, self._carry_axes)
    return stacked.replace(carry=carry)

  def train_step(self, state: steps.TrainState, batch: dict[str, np.ndarray]):
    per_device = jax.tree.map(
        lambda x: x.reshape(jax.local_device_count(), -1, *x.shape[1:]), batch)
    state, metrics = self._step(state, per_device, self._schedule)
    return state, flax.jax_utils.unreplicate(metrics)


def _process_rows(x: jax.Array, axis: int) -> np.ndarray:
  """This process's rows of a global array split by rows: its shards in row order."""
  shards = {shard.index[axis].start or 0: shard.data for shard in x.addressable_shards}
  return np.concatenate([np.asarray(shards[start]) for start in sorted(shards)], axis)


def _split_devices(rows: np.ndarray, axis: int, devices: int) -> np.ndarray:
  """[.., R, ..] rows at `axis` -> [devices, .., R / devices, ..]: device i takes the
  i-th run of rows, as PmapPartitioner.train_step deals out the batch."""
  split = rows.reshape(*rows.shape[:axis], devices, rows.shape[axis] // devices,
                       *rows.shape[axis + 1:])
  return np.moveaxis(split, axis, 0)


def _merge_devices(stacked: np.ndarray, axis: int) -> np.ndarray:
  """_split_devices' inverse."""
  rows = np.moveaxis(stacked, 0, axis)
  return rows.reshape(*rows.shape[:axis], rows.shape[axis] * rows.shape[axis + 1],
                      *rows.shape[axis + 2:])


def _carry_shardings(model: MemGPT, carry, mesh: Mesh, rules: sharding_lib.Rules):
  """The carried streams' rows split over the mesh as the batch's rows are."""
  def sharding(x, axis):
    names = tuple('batch' if i == axis else None for i in range(len(x.shape)))
    return NamedSharding(mesh, sharding_lib.mesh_spec(names, x.shape, mesh, rules))
  return jax.tree.map(sharding, carry, steps.carry_axes(model, carry))


@functools.lru_cache(maxsize=16)
def _state_programs(model: MemGPT, optimizer: optax.GradientTransformation, mesh: Mesh,
                    rules: sharding_lib.Rules, carry_rows: int):
  """The train state's shardings, its abstract layout and the compiled init (key ->
  state in that layout) of one setup, built once per process. The model is traced once
  for init: the traced program's shapes and logical axis names give the shardings, and
  the compiled init replays it. `carry_rows` > 0: a model state carried for that many
  streams (data.layout='streams'), its rows split like the batch's."""
  traced = jax.jit(lambda rng: steps.init_train_state(model, optimizer, rng, 1, carry_rows)
                   ).trace(jax.random.PRNGKey(0))
  boxed = traced.out_info
  shardings = sharding_lib.tree_shardings(boxed, mesh, rules)
  if carry_rows:
    shardings = shardings.replace(carry=_carry_shardings(model, boxed.carry, mesh, rules))
  abstract_state = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      nn.unbox(boxed), shardings)
  replay = jax.extend.core.jaxpr_as_fun(traced.jaxpr)
  unboxed = jax.tree.structure(nn.unbox(boxed))
  init = jax.jit(lambda rng: jax.tree.unflatten(unboxed, replay(rng)),
                 out_shardings=shardings)
  return shardings, abstract_state, init


def make_partitioner(config: ml_collections.ConfigDict, model: MemGPT,
                     optimizer: optax.GradientTransformation) -> JitPartitioner:
  """The partitioner config.parallelism names ('jit' or 'pmap')."""
  if config.parallelism == 'pmap':
    return PmapPartitioner(config, model, optimizer)
  if config.parallelism == 'jit':
    return JitPartitioner(config, model, optimizer)
  raise ConfigError(f"parallelism={config.parallelism!r} is not one of 'jit', 'pmap'")
