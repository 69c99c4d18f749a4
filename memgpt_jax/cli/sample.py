"""memgpt-sample --workdir=DIR --prompt=TEXT [--max_new_tokens=N --temperature=T ...]
memgpt-sample --workdir=DIR --inputs=SOURCE   (a seq2seq model: prints its target)

Restores the latest checkpoint's parameters and the config saved beside it, feeds
the prompt segment by segment (memory carried), and streams the continuation.
"""

import pathlib

from absl import flags

from memgpt_jax import sampling
from memgpt_jax.cli.common import run_main
from memgpt_jax.data import records
from memgpt_jax.data.pipeline import task_configs
from memgpt_jax.errors import UserError

_WORKDIR = flags.DEFINE_string('workdir', None, 'A workdir written by memgpt-train.')
_PROMPT = flags.DEFINE_string('prompt', None, 'Text to continue.')
_PROMPT_FILE = flags.DEFINE_string('prompt_file', None, 'A UTF-8 file whose text to continue.')
_INPUTS = flags.DEFINE_string('inputs', None,
                              'A seq2seq model\'s source (e.g. an article to summarise).')
_MAX_NEW_TOKENS = flags.DEFINE_integer('max_new_tokens', 200, 'Tokens to generate.')
_TEMPERATURE = flags.DEFINE_float('temperature', 0.8, '0 is greedy.')
_TOP_K = flags.DEFINE_integer('top_k', 0, 'Keep the k most likely tokens (0: all).')
_TOP_P = flags.DEFINE_float('top_p', 0.95, 'Nucleus: keep the top tokens holding this mass.')
_SEED = flags.DEFINE_integer('seed', 0, 'Sampling seed.')
_NUM_SAMPLES = flags.DEFINE_integer('num_samples', 1, 'Samples decoded as one batch.')
flags.mark_flag_as_required('workdir')


def _prompt() -> str:
  given = [f.value for f in (_PROMPT, _PROMPT_FILE, _INPUTS) if f.value is not None]
  if len(given) != 1:
    raise UserError('give exactly one of --prompt=TEXT, --prompt_file=FILE and --inputs=TEXT')
  if _PROMPT_FILE.value is None:
    return given[0]
  path = pathlib.Path(_PROMPT_FILE.value)
  if not path.is_file():
    raise UserError(f'--prompt_file {path} does not exist')
  return path.read_text(encoding='utf-8')


def main(argv):
  del argv
  prompt = _prompt()
  if not prompt:
    raise UserError('the prompt is empty: give --prompt=TEXT or a non-empty --prompt_file')
  decoder, tokenizer, config = sampling.load_decoder(_WORKDIR.value)
  seq2seq = _INPUTS.value is not None
  if seq2seq and not any(records.is_seq2seq(task.data)
                         for task in task_configs(config).values()):
    raise UserError(f'--inputs is for seq2seq models; {_WORKDIR.value} holds a causal LM '
                    '(use --prompt)')
  sampling.sample(decoder, tokenizer, prompt, _MAX_NEW_TOKENS.value, seed=_SEED.value,
                  temperature=_TEMPERATURE.value, top_k=_TOP_K.value, top_p=_TOP_P.value,
                  num_samples=_NUM_SAMPLES.value, seq2seq=seq2seq)


def run():
  run_main('memgpt-sample', main)


if __name__ == '__main__':
  run()
