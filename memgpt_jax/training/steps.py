"""Pure train / eval step functions; memgpt_jax.parallel compiles them once over the devices."""

from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import optax

from memgpt_jax import losses
from memgpt_jax.model.state import MemoryState, row_axes
from memgpt_jax.model.transformer import MemGPT, init_tokens
from memgpt_jax.parallel import sharding as sharding_lib
from memgpt_jax.training.optimizer import Schedule, learning_rate


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: optimizer updates done
  params: dict
  opt_state: optax.OptState
  rng: jax.Array  # raw uint32[2] key; the step's key is fold_in(rng, step)
  # data.layout='streams': the model's state after the last step, for every row of the
  # global batch (its stream); None in the packed layout, whose rows start fresh.
  carry: MemoryState | None = None


def init_train_state(model: MemGPT, optimizer: optax.GradientTransformation,
                     rng: jax.Array, batch_size: int, carry_rows: int = 0) -> TrainState:
  """Step 0 from `rng` (jax.random.PRNGKey(config.seed)), with a fresh model state for
  `carry_rows` streams if > 0. Parameters and the optimizer's per-parameter state come
  boxed in nn.LogicallyPartitioned: their logical axis names give the state's sharding
  (memgpt_jax.parallel); nn.unbox(state) holds the plain arrays."""
  init_rng, train_rng = jax.random.split(rng)
  params = model.init(init_rng, init_tokens(model.cfg, batch_size))['params']
  carry = model.apply({'params': params}, carry_rows,
                      method=MemGPT.initial_state) if carry_rows else None
  return TrainState(step=jax.numpy.int32(0), params=params,
                    opt_state=optimizer.init(params), rng=train_rng, carry=carry)


def carry_axes(model: MemGPT, carry: MemoryState | None) -> MemoryState | None:
  """The rows' axis in each leaf of a carried state (None for none)."""
  return None if carry is None else row_axes(carry, model.cfg.scan_layers)


def _micro_batches(tree, count: int, axes=0):
  """Rows [.., B, ..] at `axes` (an int, or a tree of them) -> [count, .., B / count, ..]:
  micro-batch j takes rows j, j + count, ..., so where the rows are split over devices
  every micro-batch is split the same way."""
  def split(x, axis):
    x = x.reshape(*x.shape[:axis], x.shape[axis] // count, count, *x.shape[axis + 1:])
    return jnp.moveaxis(x, axis + 1, 0)
  return jax.tree.map(split, tree, axes if not isinstance(axes, int) else
                      jax.tree.map(lambda _: axes, tree))


def _joined(tree, axes):
  """_micro_batches' inverse: every micro-batch's rows back in their places."""
  def join(x, axis):
    x = jnp.moveaxis(x, 0, axis + 1)  # sizes spelled out: a leaf may have none (no pointer)
    return x.reshape(*x.shape[:axis], x.shape[axis] * x.shape[axis + 1], *x.shape[axis + 2:])
  return jax.tree.map(join, tree, axes)


class StepSettings(NamedTuple):
  """What the train step is compiled for besides the shapes. Hashable (a static
  argument): equal settings, with one optimizer object per optimizer config
  (memgpt_jax/training/optimizer.py), share one compiled step."""
  model: MemGPT
  optimizer: optax.GradientTransformation
  z_loss: float
  coverage_loss: float
  write_cost: float
  grad_accum_steps: int
  layout: sharding_lib.ActivationLayout | None  # where constrain() puts activations
  pointer_aux_loss: float = 0.0


def apply_model(model: MemGPT, params: dict, batch: dict,
                layout: sharding_lib.ActivationLayout | None, rngs: dict | None = None,
                carry: MemoryState | None = None):
  """The model on a batch's rows (its doc_ids and prefix when it has them, an
  encoder-decoder's sources: memgpt_jax/data/pipeline.py), from the
  state `carry` (None: fresh rows), its activations placed by `layout`:
  -> (the state after the rows, or None without a carry; SegmentOutput)."""
  with sharding_lib.activation_layout(layout):
    # An encoder-decoder's rows start from its source (no streams: a carry stays as is).
    if carry is None or model.cfg.arch == 'encoder_decoder':
      return carry, model.apply({'params': params}, batch['inputs'], batch.get('doc_ids'),
                                batch.get('prefix'), batch.get('encoder_inputs'),
                                batch.get('encoder_doc_ids'), rngs=rngs)
    return model.apply({'params': params}, batch['inputs'], carry, batch.get('doc_ids'),
                       batch.get('prefix'), rngs=rngs, method=MemGPT.run_segments)


def train_step(state: TrainState, batch: dict, schedule: Schedule, settings: StepSettings,
               axis_name: str | None = None) -> tuple[TrainState, dict]:
  """One optimizer update on the mean loss over the batch's tokens, of size
  learning_rate(state.step, schedule) (traced: no recompile for another schedule).

  `batch`: inputs, targets, mask, and optionally doc_ids and prefix
  (memgpt_jax/data/pipeline.py); without them a row is one document, no prefix.
  With a carried state (state.carry: the streams layout) the rows start from it, its
  gradient cut, and the new state holds where they end.

  With `settings.grad_accum_steps` k > 1 the batch is differentiated k micro-batches
  at a time (activation memory of B / k rows) and their gradients and metrics summed, each
  weighted by its share of the batch's tokens: the update of one pass over the
  batch. Under pmap, `axis_name` is the device axis and the devices combine theirs
  the same way (a pmean when the shares are equal), so the update is the one a
  single device would make on the whole batch.
  """
  model, optimizer = settings.model, settings.optimizer
  grad_accum_steps = settings.grad_accum_steps
  dropout_rng = jax.random.fold_in(state.rng, state.step)
  if axis_name is not None:  # independent dropout masks on every device
    dropout_rng = jax.random.fold_in(dropout_rng, jax.lax.axis_index(axis_name))
  scored = batch['mask'].sum()
  if axis_name is not None:
    scored = jax.lax.psum(scored, axis_name)
  tokens = jax.numpy.maximum(scored, 1.0)

  def weighted_grads(micro_batch: dict, carry: MemoryState | None, rng: jax.Array):
    def loss_fn(params):
      carry_out, output = apply_model(model, params, micro_batch, settings.layout,
                                      {'dropout': rng}, carry)
      loss, metrics = losses.train_loss(output, micro_batch, settings.z_loss,
                                        settings.coverage_loss, settings.write_cost,
                                        settings.pointer_aux_loss)
      return loss, (metrics, carry_out)

    (_, (metrics, carry_out)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    share = micro_batch['mask'].sum() / tokens
    return jax.tree.map(lambda x: share * x, (grads, metrics)), carry_out

  carry = jax.lax.stop_gradient(state.carry)  # truncated BPTT at the step boundary
  if grad_accum_steps == 1:
    (grads, metrics), carry = weighted_grads(batch, carry, dropout_rng)
  else:
    def accumulate(total, inputs):
      index, micro_batch, micro_carry = inputs
      part, carry_out = weighted_grads(micro_batch, micro_carry,
                                       jax.random.fold_in(dropout_rng, index))
      return jax.tree.map(jax.numpy.add, total, part), carry_out

    axes = carry_axes(model, carry)
    micro_batches = _micro_batches(batch, grad_accum_steps)
    micro_carries = _micro_batches(carry, grad_accum_steps, axes)
    first = jax.tree.map(lambda x: x[0], (micro_batches, micro_carries))
    zeros = jax.tree.map(jax.numpy.zeros_like,
                         jax.eval_shape(weighted_grads, *first, dropout_rng)[0])
    (grads, metrics), carries = jax.lax.scan(
        accumulate, zeros,
        (jax.numpy.arange(grad_accum_steps), micro_batches, micro_carries))
    carry = _joined(carries, axes)
  if axis_name is not None:
    grads, metrics = jax.lax.psum((grads, metrics), axis_name)
  direction, opt_state = optimizer.update(grads, state.opt_state, state.params)
  step_size = -learning_rate(state.step, schedule)
  params = optax.apply_updates(state.params, jax.tree.map(lambda d: step_size * d, direction))
  metrics['grad_norm'] = optax.tree.norm(grads)
  metrics['scored_tokens'] = scored  # the weight of this step's per-token means
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                       carry=carry), metrics


def eval_step(params: dict, carry: MemoryState | None, batch: dict, model: MemGPT,
              layout: sharding_lib.ActivationLayout | None,
              num_groups: int) -> tuple[MemoryState | None, dict]:
  """losses.eval_sums of the batch's rows from the state `carry` (None: fresh rows) ->
  (the state after them, the sums). With num_groups > 0 the batch's 'groups' (each
  target's group: streams' position buckets) split the nll and tokens too."""
  carry, output = apply_model(model, params, batch, layout, carry=carry)
  return carry, losses.eval_sums(output, batch['targets'], batch['mask'],
                                 batch.get('groups'), num_groups)
