"""AdamW with linear warmup, cosine decay and global-norm clipping (Optax).

The optimizer gives the update's direction; the train step scales it by
-learning_rate(step, schedule). The schedule's numbers are traced inputs of the step,
not constants compiled into it: runs that differ only in them (a longer run, a resume
that extends one, a learning-rate sweep, the stages of a curriculum) share one program.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from memgpt_jax.model.transformer import per_layer_ndim


class Schedule(NamedTuple):
  """Linear warmup from 0 to `peak` over `warmup_steps` updates, then a cosine decay
  to `end` at `decay_steps` (optax.warmup_cosine_decay_schedule's shape)."""
  peak: float
  warmup_steps: float
  decay_steps: float
  end: float


def make_schedule(train: ml_collections.ConfigDict) -> Schedule:
  """Warmup is cut to num_steps, so a short smoke run needs no other change."""
  return Schedule(peak=float(train.learning_rate),
                  warmup_steps=float(min(train.warmup_steps, train.num_steps - 1)),
                  decay_steps=float(train.num_steps),
                  end=float(train.learning_rate * train.end_lr_ratio))


def learning_rate(step: jax.Array | int, schedule: Schedule) -> jax.Array:
  """The learning rate of update `step` (counted from 0): one function for the device's
  update and the host's log."""
  step = jnp.asarray(step, jnp.float32)
  warmup = schedule.peak * step / jnp.maximum(schedule.warmup_steps, 1.0)
  decaying = jnp.clip((step - schedule.warmup_steps) / jnp.maximum(
      schedule.decay_steps - schedule.warmup_steps, 1.0), 0.0, 1.0)
  cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * decaying))
  return jnp.where(step < schedule.warmup_steps, warmup,
                   schedule.end + (schedule.peak - schedule.end) * cosine)


def _decays(params):
  """Weight decay on matrices only: not on norms' scales, biases or gate vectors, also
  where model.scan_layers stacks them into matrices over the layers."""
  return jax.tree_util.tree_map_with_path(lambda path, p: per_layer_ndim(path, p) >= 2,
                                          params)


def make_optimizer(train: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """AdamW's update before the learning rate: clipped gradients -> Adam's direction plus
  the decoupled weight decay (the train step multiplies it by -learning_rate). One
  update per train step; gradient accumulation happens inside the step
  (memgpt_jax.training.steps), so the schedule counts optimizer updates.

  One object per settings: the compiled train step is cached by its settings, the
  optimizer among them (steps.StepSettings), so equal configs share one program.
  """
  return _adamw_direction(
      ml_collections.FrozenConfigDict({key: train[key] for key in _SETTINGS}))


# The train.* settings the optimizer reads (the schedule's: make_schedule).
_SETTINGS = ('grad_clip_norm', 'adam_b1', 'adam_b2', 'weight_decay')


@functools.lru_cache(maxsize=32)
def _adamw_direction(train: ml_collections.FrozenConfigDict) -> optax.GradientTransformation:
  return optax.chain(
      optax.clip_by_global_norm(train.grad_clip_norm),
      optax.scale_by_adam(b1=train.adam_b1, b2=train.adam_b2),
      optax.add_decayed_weights(train.weight_decay, mask=_decays),
  )
