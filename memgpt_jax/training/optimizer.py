"""AdamW with linear warmup, cosine decay and global-norm clipping (Optax)."""

import functools

import jax
import ml_collections
import optax


def learning_rate_schedule(train: ml_collections.ConfigDict) -> optax.Schedule:
  """Warmup is cut to num_steps, so a short smoke run needs no other change."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0,
      peak_value=train.learning_rate,
      warmup_steps=min(train.warmup_steps, train.num_steps - 1),
      decay_steps=train.num_steps,
      end_value=train.learning_rate * train.end_lr_ratio,
  )


def _decays(params):
  """Weight decay on matrices only: not on norms' scales, biases or gate vectors."""
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(train: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """One update per train step; gradient accumulation happens inside the step
  (memgpt_jax.training.steps), so the schedule counts optimizer updates.

  One object per settings: the compiled train step is cached by its settings, the
  optimizer among them (steps.StepSettings), so equal configs share one program.
  """
  return _adamw(ml_collections.FrozenConfigDict({key: train[key] for key in _SETTINGS}))


# The train.* settings the optimizer reads.
_SETTINGS = ('grad_clip_norm', 'learning_rate', 'warmup_steps', 'num_steps', 'end_lr_ratio',
             'adam_b1', 'adam_b2', 'weight_decay')


@functools.lru_cache(maxsize=32)
def _adamw(train: ml_collections.FrozenConfigDict) -> optax.GradientTransformation:
  return optax.chain(
      optax.clip_by_global_norm(train.grad_clip_norm),
      optax.adamw(learning_rate_schedule(train), b1=train.adam_b1, b2=train.adam_b2,
                  weight_decay=train.weight_decay, mask=_decays),
  )
