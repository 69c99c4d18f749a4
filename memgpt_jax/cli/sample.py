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
from memgpt_jax.cli.common import define_sampling_flags, flag_values, run_main

_WORKDIR = flags.DEFINE_string('workdir', None, 'A workdir written by memgpt-train.')
_PROMPT = flags.DEFINE_string('prompt', None, 'Text to continue.')
_PROMPT_FILE = flags.DEFINE_string('prompt_file', None, 'A UTF-8 file whose text to continue.')
_INPUTS = flags.DEFINE_string('inputs', None,
                              'A seq2seq model\'s source (e.g. an article to summarise).')
_SAMPLING = define_sampling_flags('Tokens to generate.')
_NUM_SAMPLES = flags.DEFINE_integer('num_samples', 1, 'Samples decoded as one batch.')
flags.mark_flag_as_required('workdir')


def main(argv):
  del argv
  prompt = sampling.prompt_text(_PROMPT.value, _PROMPT_FILE.value, _INPUTS.value)
  decoder, tokenizer, config = sampling.load_decoder(_WORKDIR.value)
  seq2seq = _INPUTS.value is not None
  if seq2seq:
    sampling.check_takes_inputs(config, _WORKDIR.value)
  sampling.sample(decoder, tokenizer, prompt, **flag_values(_SAMPLING),
                  num_samples=_NUM_SAMPLES.value, seq2seq=seq2seq)


def run():
  run_main('memgpt-sample', main)


if __name__ == '__main__':
  run()
