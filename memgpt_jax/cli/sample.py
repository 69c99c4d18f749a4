"""memgpt-sample --workdir=DIR --prompt=TEXT [--max_new_tokens=N --temperature=T ...]
memgpt-sample --workdir=DIR --inputs=SOURCE   (a seq2seq model: prints its target)

Restores the parameters of the newest checkpoint that restores and the config saved
beside it, feeds the prompt segment by segment (memory carried), and streams the
continuation.
"""

# pylint: disable=wrong-import-position; SIGTERM is answered before JAX is imported
from memgpt_jax.cli import signals
signals.exit_on_sigterm('memgpt-sample')

from absl import flags

from memgpt_jax import sampling
from memgpt_jax.cli.common import run_main

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


def main(argv):
  del argv
  prompt = sampling.prompt_text(_PROMPT.value, _PROMPT_FILE.value, _INPUTS.value)
  decoder, tokenizer, config = sampling.load_decoder(_WORKDIR.value)
  seq2seq = _INPUTS.value is not None
  if seq2seq:
    sampling.check_takes_inputs(config, _WORKDIR.value)
  sampling.sample(decoder, tokenizer, prompt, _MAX_NEW_TOKENS.value, seed=_SEED.value,
                  temperature=_TEMPERATURE.value, top_k=_TOP_K.value, top_p=_TOP_P.value,
                  num_samples=_NUM_SAMPLES.value, seq2seq=seq2seq)


def run():
  run_main('memgpt-sample', main)


if __name__ == '__main__':
  run()
