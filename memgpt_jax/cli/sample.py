"""memgpt-sample --workdir=DIR --prompt=TEXT [--max_new_tokens=N --temperature=T ...]

Restores the latest checkpoint and the config saved beside it, feeds the prompt
segment by segment (memory carried), and streams the continuation.
"""

import pathlib

from absl import flags

from memgpt_jax import sampling
from memgpt_jax.cli.common import run_main
from memgpt_jax.errors import UserError

_WORKDIR = flags.DEFINE_string('workdir', None, 'A workdir written by memgpt-train.')
_PROMPT = flags.DEFINE_string('prompt', None, 'Text to continue.')
_PROMPT_FILE = flags.DEFINE_string('prompt_file', None, 'A UTF-8 file whose text to continue.')
_MAX_NEW_TOKENS = flags.DEFINE_integer('max_new_tokens', 200, 'Tokens to generate.')
_TEMPERATURE = flags.DEFINE_float('temperature', 0.8, '0 is greedy.')
_TOP_K = flags.DEFINE_integer('top_k', 0, 'Keep the k most likely tokens (0: all).')
_TOP_P = flags.DEFINE_float('top_p', 0.95, 'Nucleus: keep the top tokens holding this mass.')
_SEED = flags.DEFINE_integer('seed', 0, 'Sampling seed.')
_NUM_SAMPLES = flags.DEFINE_integer('num_samples', 1, 'Samples decoded as one batch.')
flags.mark_flag_as_required('workdir')


def _prompt() -> str:
  if (_PROMPT.value is None) == (_PROMPT_FILE.value is None):
    raise UserError('give exactly one of --prompt=TEXT and --prompt_file=FILE')
  if _PROMPT.value is not None:
    return _PROMPT.value
  path = pathlib.Path(_PROMPT_FILE.value)
  if not path.is_file():
    raise UserError(f'--prompt_file {path} does not exist')
  return path.read_text(encoding='utf-8')


def main(argv):
  del argv
  prompt = _prompt()
  if not prompt:
    raise UserError('the prompt is empty: give --prompt=TEXT or a non-empty --prompt_file')
  decoder, tokenizer, _ = sampling.load_decoder(_WORKDIR.value)
  sampling.sample(decoder, tokenizer, prompt, _MAX_NEW_TOKENS.value, seed=_SEED.value,
                  temperature=_TEMPERATURE.value, top_k=_TOP_K.value, top_p=_TOP_P.value,
                  num_samples=_NUM_SAMPLES.value)


def run():
  run_main('memgpt-sample', main)


if __name__ == '__main__':
  run()
