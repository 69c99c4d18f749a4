"""Pure train / eval step functions; memgpt_jax.parallel compiles them once over the devices."""

from typing import NamedTuple

import flax.struct
import jax
import optax

from memgpt_jax import losses
from memgpt_jax.model.transformer import MemGPT, init_tokens
from memgpt_jax.parallel import sharding as sharding_lib
from memgpt_jax.training.optimizer import Schedule, learning_rate


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: optimizer updates done
  params: dict
  opt_state: optax.OptState
  rng: jax.Array  # raw uint32[2] key; the step's key is fold_in(rng, step)


def init_train_state(model: MemGPT, optimizer: optax.GradientTransformation,
                     rng: jax.Array, batch_size: int) -> TrainState:
  """Step 0 from `rng` (jax.random.PRNGKey(config.seed)). Parameters and the
  optimizer's per-parameter state come boxed in nn.LogicallyPartitioned: their logical
  axis names give the state's sharding (memgpt_jax.parallel); nn.unbox(state) holds
  the plain arrays."""
  init_rng, train_rng = jax.random.split(rng)
  params = model.init(init_rng, init_tokens(model.cfg, batch_size))['params']
  return TrainState(step=jax.numpy.int32(0), params=params,
                    opt_state=optimizer.init(params), rng=train_rng)


def _micro_batches(batch: dict, count: int) -> dict:
  """[B, ...] -> [count, B / count, ...]: micro-batch j takes rows j, j + count, ...,
  so where the rows are split over devices every micro-batch is split the same way."""
  return jax.tree.map(
      lambda x: x.reshape(x.shape[0] // count, count, *x.shape[1:]).swapaxes(0, 1), batch)


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


def apply_model(model: MemGPT, params: dict, batch: dict,
                layout: sharding_lib.ActivationLayout | None, rngs: dict | None = None):
  """The model on a batch's rows (its doc_ids and prefix when it has them), its
  activations placed by `layout`: -> SegmentOutput."""
  with sharding_lib.activation_layout(layout):
    return model.apply({'params': params}, batch['inputs'], batch.get('doc_ids'),
                       batch.get('prefix'), rngs=rngs)


def train_step(state: TrainState, batch: dict, schedule: Schedule, settings: StepSettings,
               axis_name: str | None = None) -> tuple[TrainState, dict]:
  """One optimizer update on the mean loss over the batch's tokens, of size
  learning_rate(state.step, schedule) (traced: no recompile for another schedule).

  `batch`: inputs, targets, mask, and optionally doc_ids and prefix
  (memgpt_jax/data/pipeline.py); without them a row is one document, no prefix.

  With `settings.grad_accum_steps` k > 1 the batch is differentiated k micro-batches
  at a time (activation memory of B / k rows) and their gradients and metrics summed, each
  weighted by its share of the batch's tokens: the update of one pass over the
  batch. Under pmap, `axis_name` is the device axis and the devices combine theirs
  the same way (a pmean when the shares are equal), so the update is the one a
  single device would make on the whole batch.
  """
  model, optimizer, z_loss, coverage_loss, write_cost, grad_accum_steps, layout = settings
  dropout_rng = jax.random.fold_in(state.rng, state.step)
  if axis_name is not None:  # independent dropout masks on every device
    dropout_rng = jax.random.fold_in(dropout_rng, jax.lax.axis_index(axis_name))
  tokens = batch['mask'].sum()
  if axis_name is not None:
    tokens = jax.lax.psum(tokens, axis_name)
  tokens = jax.numpy.maximum(tokens, 1.0)

  def weighted_grads(micro_batch: dict, rng: jax.Array):
    def loss_fn(params):
      output = apply_model(model, params, micro_batch, layout, {'dropout': rng})
      return losses.train_loss(output, micro_batch, z_loss, coverage_loss, write_cost)

    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    share = micro_batch['mask'].sum() / tokens
    return jax.tree.map(lambda x: share * x, (grads, metrics))

  if grad_accum_steps == 1:
    grads, metrics = weighted_grads(batch, dropout_rng)
  else:
    def accumulate(total, inputs):
      index, micro_batch = inputs
      part = weighted_grads(micro_batch, jax.random.fold_in(dropout_rng, index))
      return jax.tree.map(jax.numpy.add, total, part), None

    micro_batches = _micro_batches(batch, grad_accum_steps)
    first = jax.tree.map(lambda x: x[0], micro_batches)
    zeros = jax.tree.map(jax.numpy.zeros_like,
                         jax.eval_shape(weighted_grads, first, dropout_rng))
    (grads, metrics), _ = jax.lax.scan(
        accumulate, zeros, (jax.numpy.arange(grad_accum_steps), micro_batches))
  if axis_name is not None:
    grads, metrics = jax.lax.psum((grads, metrics), axis_name)
  direction, opt_state = optimizer.update(grads, state.opt_state, state.params)
  step_size = -learning_rate(state.step, schedule)
  params = optax.apply_updates(state.params, jax.tree.map(lambda d: step_size * d, direction))
  metrics['grad_norm'] = optax.tree.norm(grads)
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def eval_step(params: dict, batch: dict, model: MemGPT,
              layout: sharding_lib.ActivationLayout | None) -> dict:
  output = apply_model(model, params, batch, layout)
  return losses.eval_sums(output, batch['targets'], batch['mask'])
