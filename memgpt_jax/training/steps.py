"""Pure train / eval step functions; memgpt_jax.parallel compiles them once over the devices."""

import functools

import flax.linen as nn
import flax.struct
import jax
import ml_collections
import optax

from memgpt_jax import losses
from memgpt_jax.model.config import ModelConfig
from memgpt_jax.model.transformer import MemGPT
from memgpt_jax.training.optimizer import make_optimizer


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: optimizer updates done
  params: dict
  opt_state: optax.OptState
  rng: jax.Array  # raw uint32[2] key; the step's key is fold_in(rng, step)


def init_train_state(model: MemGPT, optimizer: optax.GradientTransformation,
                     seed: int, batch_size: int) -> TrainState:
  """Step 0. Parameters and the optimizer's per-parameter state come boxed in
  nn.LogicallyPartitioned: their logical axis names give the state's sharding
  (memgpt_jax.parallel); nn.unbox(state) holds the plain arrays."""
  rng = jax.random.PRNGKey(seed)
  init_rng, train_rng = jax.random.split(rng)
  tokens = jax.numpy.zeros((batch_size, model.cfg.seq_len), jax.numpy.int32)
  params = model.init(init_rng, tokens)['params']
  return TrainState(step=jax.numpy.int32(0), params=params,
                    opt_state=optimizer.init(params), rng=train_rng)


def abstract_train_state(config: ml_collections.ConfigDict, vocab_size: int,
                         sharding: jax.sharding.Sharding | None = None
                         ) -> tuple[MemGPT, TrainState]:
  """The model a config (e.g. one saved with a checkpoint) builds, and the shapes and
  dtypes of its train state without computing it; every array laid out on `sharding`
  if given (where a checkpoint from any topology restores to)."""
  model = MemGPT(ModelConfig.from_config(config.model, vocab_size))
  init = functools.partial(init_train_state, model, make_optimizer(config.train),
                           config.seed, 1)
  abstract = nn.unbox(jax.eval_shape(init))
  return model, jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract)


def train_step(state: TrainState, batch: dict, *, model: MemGPT,
               optimizer: optax.GradientTransformation, z_loss: float,
               coverage_loss: float = 0.0, write_cost: float = 0.0,
               axis_name: str | None = None) -> tuple[TrainState, dict]:
  """One optimizer update on the mean loss over the batch's tokens.

  `batch`: inputs, targets, mask, and optionally doc_ids and prefix
  (memgpt_jax/data/pipeline.py); without them a row is one document, no prefix.

  Under pmap, `axis_name` is the device axis: each device differentiates its own
  rows, then the devices average gradients and metrics weighted by their share of
  the tokens (a pmean when the shares are equal), so the update is the one a
  single device would make on the whole batch.
  """
  dropout_rng = jax.random.fold_in(state.rng, state.step)
  if axis_name is not None:  # independent dropout masks on every device
    dropout_rng = jax.random.fold_in(dropout_rng, jax.lax.axis_index(axis_name))

  def loss_fn(params):
    output = model.apply({'params': params}, batch['inputs'], batch.get('doc_ids'),
                         batch.get('prefix'), rngs={'dropout': dropout_rng})
    return losses.train_loss(output, batch, z_loss, coverage_loss, write_cost)

  (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  if axis_name is not None:
    tokens = batch['mask'].sum()
    share = tokens / jax.numpy.maximum(jax.lax.psum(tokens, axis_name), 1.0)
    grads, metrics = jax.lax.psum(jax.tree.map(lambda x: share * x, (grads, metrics)),
                                  axis_name)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics['grad_norm'] = optax.tree.norm(grads)
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def eval_step(params: dict, batch: dict, *, model: MemGPT) -> dict:
  output = model.apply({'params': params}, batch['inputs'], batch.get('doc_ids'),
                       batch.get('prefix'))
  return losses.eval_sums(output, batch['targets'], batch['mask'])
