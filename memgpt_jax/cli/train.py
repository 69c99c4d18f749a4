"""memgpt-train --config=configs/default.py --workdir=runs/default [--config.a.b=v ...]

Trains (or resumes, from the workdir's latest checkpoint), evaluates, then prints a
sample from the trained model.
"""

from absl import flags
import jax
from ml_collections import config_flags

from memgpt_jax import sampling
from memgpt_jax.cli.common import run_main
from memgpt_jax.training.trainer import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file (get_config()).',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Checkpoints, metrics and the config go here.')
_SAMPLE = flags.DEFINE_bool('sample', True, 'Print a sample from the model after training.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  del argv
  config = _CONFIG.value
  metrics = train_and_evaluate(config, _WORKDIR.value)
  print('last validation: ' + ' '.join(f'{k}={v:.4f}' for k, v in metrics.items()))
  if _SAMPLE.value and jax.process_index() == 0:
    decoder, tokenizer, _ = sampling.load_decoder(_WORKDIR.value)
    print(f'--- sample (prompt {config.sample.prompt!r}) ---')
    sampling.sample(decoder, tokenizer, config.sample.prompt, config.sample.max_new_tokens,
                    seed=config.seed, temperature=config.sample.temperature,
                    top_k=config.sample.top_k, top_p=config.sample.top_p)


def run():
  run_main('memgpt-train', main)


if __name__ == '__main__':
  run()
