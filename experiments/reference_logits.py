"""How far an imported model's log-probabilities are from those of the implementation
it came from: each tiny random model of tests/fixtures/hf_reference (GPT-2, Llama,
Qwen2, written with the logits Hugging Face's transformers computed for them) imported
with memory and pointer off, and with both on (the memory's read and the pointer's
share starting at zero), then its rows decoded.

  python experiments/reference_logits.py [--out=experiments/results]
      [--name=reference_logits]

Writes <out>/<name>.json and .md: the largest absolute difference of any token's
log-probability per family and setting.
"""

import pathlib
import tempfile

from absl import app
from absl import flags
import numpy as np

from memgpt_jax import config_lib
from memgpt_jax import host_memory
from memgpt_jax import sampling
from memgpt_jax.hf_io import import_model
from memgpt_jax.provenance import provenance, write_results

ROOT = pathlib.Path(__file__).resolve().parents[1]
REFERENCE = ROOT / 'tests' / 'fixtures' / 'hf_reference'
FAMILIES = ('gpt2', 'llama', 'qwen2')


def log_softmax(logits: np.ndarray) -> np.ndarray:
  shifted = logits - logits.max(-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def compare(family: str, memory: bool, workdir: pathlib.Path) -> dict:
  """Imports the `family` fixture into `workdir` (memory and pointer on or off as
  `memory` says) and decodes its rows: -> {'got': log-probs [R, L, V], 'want': the
  reference's, 'config': the imported config}."""
  config = config_lib.load_config(ROOT / 'configs' / 'imported.py')
  config.model.segment_len, config.model.num_segments = 32, 2
  config.model.memory.enabled = config.model.pointer.enabled = memory
  import_model(REFERENCE / family, workdir, config)
  decoder, _, config = sampling.load_decoder(workdir)
  reference = np.load(REFERENCE / family / 'reference.npz')
  got, _ = decoder.feed(decoder.start(len(reference['tokens'])), reference['tokens'])
  return {'got': np.asarray(got), 'want': log_softmax(reference['logits']), 'config': config}


def main(argv):
  del argv
  rows = []
  with tempfile.TemporaryDirectory() as scratch:
    for family in FAMILIES:
      for memory in (False, True):
        result = compare(family, memory, pathlib.Path(scratch) / f'{family}_{memory}')
        rows.append({'family': family, 'memory': memory,
                     'max_abs_difference': float(np.abs(result['got'] - result['want']).max()),
                     'logit_std': float(result['want'].std(-1).mean()),
                     'tokens': int(result['want'].shape[0] * result['want'].shape[1])})
        print(rows[-1])
  report = {**provenance(), 'rows': rows,
            'versions': [str(v) for v in np.load(REFERENCE / 'gpt2' / 'reference.npz')['versions']]}
  lines = ['# Imported models against the reference implementation', '',
           f'`{report["command"]}` at commit {report["commit"]}; reference logits from '
           f'{", ".join(report["versions"])} (tests/fixtures/hf_reference/make_reference.py). '
           'Log-probabilities of every token of the fixture\'s rows.', '',
           '| family | memory and pointer | tokens | max abs difference | std of the log-probs |',
           '|---|---|---|---|---|']
  lines += [f'| {r["family"]} | {"on, from 0" if r["memory"] else "off"} | {r["tokens"]} '
            f'| {r["max_abs_difference"]:.2e} | {r["logit_std"]:.2f} |' for r in rows]
  write_results(flags.FLAGS.out, flags.FLAGS.name, report, '\n'.join(lines) + '\n')


if __name__ == '__main__':
  # Defined here, not on import: tests import compare() beside other drivers' flags.
  flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
  flags.DEFINE_string('name', 'reference_logits', 'Results file name.')
  host_memory.run(app.run, main)
