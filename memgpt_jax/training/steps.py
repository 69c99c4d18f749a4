"""Pure train / eval step functions; the trainer jits them once over the device mesh."""

import flax.struct
import jax
import optax

from memgpt_jax import losses
from memgpt_jax.model.transformer import MemGPT


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: optimizer updates done
  params: dict
  opt_state: optax.OptState
  rng: jax.Array  # raw uint32[2] key; the step's key is fold_in(rng, step)


def init_train_state(model: MemGPT, optimizer: optax.GradientTransformation,
                     seed: int, batch_size: int) -> TrainState:
  rng = jax.random.PRNGKey(seed)
  init_rng, train_rng = jax.random.split(rng)
  tokens = jax.numpy.zeros((batch_size, model.cfg.seq_len), jax.numpy.int32)
  params = model.init(init_rng, tokens)['params']
  return TrainState(step=jax.numpy.int32(0), params=params,
                    opt_state=optimizer.init(params), rng=train_rng)


def train_step(state: TrainState, batch: dict, *, model: MemGPT,
               optimizer: optax.GradientTransformation,
               z_loss: float) -> tuple[TrainState, dict]:
  dropout_rng = jax.random.fold_in(state.rng, state.step)

  def loss_fn(params):
    output = model.apply({'params': params}, batch['inputs'], rngs={'dropout': dropout_rng})
    return losses.train_loss(output, batch['targets'], batch['mask'], z_loss)

  (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics['grad_norm'] = optax.global_norm(grads)
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def eval_step(params: dict, batch: dict, *, model: MemGPT) -> dict:
  output = model.apply({'params': params}, batch['inputs'])
  return losses.eval_sums(output, batch['targets'], batch['mask'])
