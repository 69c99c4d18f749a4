"""A pretrained Llama-family model given MemGPT's memory and fine-tuned on long
documents, against the same model fine-tuned without it.

  python experiments/pretrained_finetune.py [--workdir=runs/pretrained_finetune]
      [--seeds=0,1,2] [--pretrain_steps=1000] [--finetune_steps=500]
      [--out=experiments/results] [--name=pretrained_finetune]

Nothing can be downloaded, so the pretrained model is made here first, and then used
the way a user's would be, through the real programs:
1. `memgpt-train` a Llama-shaped model (rotary positions, RMSNorm, SwiGLU, untied
   embeddings, no biases; memory and pointer off) on packed rows of the long-document
   corpus (configs/long_text.py's model size), with a byte-level tokenizer.json made by
   the `tokenizers` package;
2. `memgpt-export` it: a Hugging Face Llama directory, what a user brings;
3. `memgpt-import` it three times: as it is, with the delta memory (its read entering
   times a scale that starts at 0: the model starts as the pretrained one), and with
   the memory and the pointer (its mixture's share starting at 0 too);
4. fine-tune each, for every seed (the new parameters' initialisation and the order
   of the documents), on the same corpus in the streams layout (the state carried
   from step to step through whole documents), the same steps;
5. score every validation document whole, the state carried through it (the
   fine-tuning's final evaluation): bits per byte in the first window (T tokens) and
   after it; and the imported model before any fine-tuning, the same way
   (experiments/ablation_eval.py's evaluate_documents).
Every stage writes its own folder under --workdir and is skipped when it is there:
stopped anywhere, the same command goes on. Writes <out>/<name>.md and .json.
"""

import json
import pathlib
import statistics
import subprocess
import sys

from absl import app
from absl import flags
from absl import logging
import tokenizers

from ablation_eval import evaluate_documents
from param_matching import count_params
from memgpt_jax import host_memory
from memgpt_jax.data.hf_tokenizer import byte_level_alphabet
from memgpt_jax.provenance import provenance, write_results
from memgpt_jax.training import checkpointing
from memgpt_jax.training import workdir as workdir_lib
from memgpt_jax.training.metrics_writer import read_metrics
from report import pretrained_finetune_rows

ROOT = pathlib.Path(__file__).resolve().parents[1]
_WORKDIR = flags.DEFINE_string('workdir', str(ROOT / 'runs' / 'pretrained_finetune'),
                               'Where every stage writes its folder.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Fine-tuning seeds.')
_PRETRAIN_STEPS = flags.DEFINE_integer('pretrain_steps', 1000, 'Steps of pretraining.')
_FINETUNE_STEPS = flags.DEFINE_integer('finetune_steps', 500, 'Steps of each fine-tuning.')
_OUT = flags.DEFINE_string('out', str(ROOT / 'experiments' / 'results'), 'Results folder.')
_NAME = flags.DEFINE_string('name', 'pretrained_finetune', 'Results file name.')

EOS = '<|endoftext|>'
LLAMA = {'model.position': 'rope', 'model.norm_type': 'rmsnorm', 'model.mlp_type': 'swiglu',
         'model.tie_embeddings': False, 'model.bias': 'none',
         'model.memory.enabled': False, 'model.pointer.enabled': False}
# Fine-tuning: configs/long_text.py's streams and batch, a smaller learning rate.
FINETUNE = {'data.source': 'pystdlib_packages', 'data.layout': 'streams',
            'train.batch_size': 8, 'train.grad_accum_steps': 2, 'train.learning_rate': 1e-3,
            'train.warmup_steps': 50, 'train.log_every': 50, 'train.checkpoint_every': 250}
ARMS = {'memory_off': {}, 'memory_on': {'model.memory.enabled': True},
        'memory_pointer': {'model.memory.enabled': True, 'model.pointer.enabled': True}}


def write_byte_level_tokenizer(path: pathlib.Path):
  """A tokenizer.json of the 256 bytes (byte-level BPE without merges) and an eos token."""
  tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE(vocab=byte_level_alphabet(),
                                                          merges=[]))
  tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                                use_regex=False)
  tokenizer.decoder = tokenizers.decoders.ByteLevel()
  tokenizer.add_special_tokens([EOS])
  tokenizer.save(str(path))


def program(name: str, *args: str):
  """One run of a console program (python -m memgpt_jax.cli.NAME); exits on failure."""
  command = [sys.executable, '-m', f'memgpt_jax.cli.{name}', *args]
  print('[pretrained_finetune]', ' '.join(command[2:]), flush=True)
  if subprocess.run(command, cwd=ROOT, check=False).returncode:
    raise SystemExit(f'pretrained_finetune: {" ".join(command[2:])} failed')


def dotted(settings: dict) -> list[str]:
  return [f'--config.{key}={value}' for key, value in settings.items()]


def trained(workdir: pathlib.Path, steps: int) -> bool:
  saved = checkpointing.finished_steps(workdir / workdir_lib.CHECKPOINTS)
  return bool(saved) and max(saved) >= steps


def imported(root: pathlib.Path, hf_dir: pathlib.Path, arm: str) -> pathlib.Path:
  """Stage 3 for one arm: memgpt-import's workdir (made once)."""
  workdir = root / f'imported_{arm}'
  if not workdir.exists():
    program('import_model', f'--from={hf_dir}', f'--workdir={workdir}', *dotted(ARMS[arm]))
  return workdir


def pretrain(root: pathlib.Path, steps: int) -> pathlib.Path:
  """Stages 1-2: the 'pretrained' Hugging Face directory."""
  hf_dir = root / 'pretrained_hf'
  if hf_dir.exists():
    return hf_dir
  tokenizer = root / 'tokenizer.json'
  if not tokenizer.exists():
    root.mkdir(parents=True, exist_ok=True)
    write_byte_level_tokenizer(tokenizer)
  workdir = root / 'pretrain'
  if not trained(workdir, steps):
    program('train', '--config=configs/long_text.py', f'--workdir={workdir}', '--sample=false',
            *dotted(LLAMA | {'data.layout': 'packed', 'train.num_steps': steps,
                             'train.eval_every': steps, 'data.tokenizer': 'huggingface',
                             'data.huggingface.tokenizer_file': tokenizer,
                             'data.huggingface.eos_token': EOS}))
  program('export_model', f'--workdir={workdir}', f'--to={hf_dir}')
  return hf_dir


def before_finetuning(root: pathlib.Path, hf_dir: pathlib.Path) -> dict:
  """The imported model as it came (memory off), its documents scored the same way."""
  saved = root / 'before_finetuning.json'
  if saved.exists():
    return json.loads(saved.read_text())
  model = imported(root, hf_dir, 'memory_off')
  config = workdir_lib.saved_config(model)
  config.data.source, config.data.layout = FINETUNE['data.source'], 'streams'
  config.train.eval_position_buckets = (config.model.segment_len,)
  scores = evaluate_documents(config, model)['documents']['reset']
  result = {'arm': 'before_finetuning', 'seed': None, 'params': count_params(config),
            'validation': scores}
  saved.write_text(json.dumps(result))
  return result


def finetune(root: pathlib.Path, hf_dir: pathlib.Path, arm: str, seed: int,
             steps: int) -> dict:
  """Stages 3-5 for one arm and seed: the final whole-document evaluation of its
  training run (every validation document read whole, the state carried)."""
  model, workdir = imported(root, hf_dir, arm), root / arm / f'seed{seed}'
  if not trained(workdir, steps):
    segment_len = workdir_lib.saved_config(model).model.segment_len
    program('train', f'--config=configs/imported.py:{model}', f'--workdir={workdir}',
            '--sample=false', *dotted(FINETUNE | {
                'seed': seed, 'data.shuffle_seed': seed, 'train.num_steps': steps,
                'train.eval_every': steps,
                'train.eval_position_buckets': f'({segment_len},)'}))
  config = workdir_lib.saved_config(workdir)
  records = read_metrics(workdir)
  final = [r for r in records if r['split'] == 'validation' and r['step'] == steps][-1]
  speeds = [r['tokens_per_second'] for r in records
            if r['split'] == 'train' and 'tokens_per_second' in r][1:]  # 1st: compiling
  return {'arm': arm, 'seed': seed, 'params': count_params(config),
          'tokens_per_second': statistics.median(speeds) if speeds else None,
          'validation': {k: v for k, v in final.items() if k not in ('step', 'split')}}


def markdown(report: dict) -> str:
  return '\n'.join([
      f'# A pretrained Llama-family model fine-tuned with and without memory: {report["name"]}',
      '', f'`{report["command"]}` at commit {report["commit"]}. {report["what"]}', '',
      *pretrained_finetune_rows(report)]) + '\n'


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every restore at INFO
  root = pathlib.Path(_WORKDIR.value)
  hf_dir = pretrain(root, _PRETRAIN_STEPS.value)
  runs = [before_finetuning(root, hf_dir)]
  for seed in (int(s) for s in _SEEDS.value):
    for arm in ARMS:
      runs.append(finetune(root, hf_dir, arm, seed, _FINETUNE_STEPS.value))
  hf = json.loads((hf_dir / 'config.json').read_text())
  what = (f'The pretrained model: {hf["num_hidden_layers"]} layers, hidden size '
          f'{hf["hidden_size"]}, {hf["num_attention_heads"]} heads, MLP '
          f'{hf["intermediate_size"]}, vocabulary {hf["vocab_size"]} (bytes and an end of '
          f'text), trained {_PRETRAIN_STEPS.value} steps on packed rows; each fine-tuning '
          f'{_FINETUNE_STEPS.value} steps of 8 streams of 512 tokens.')
  report = {'name': _NAME.value, **provenance(), 'what': what,
            'pretrain_steps': _PRETRAIN_STEPS.value,
            'finetune_steps': _FINETUNE_STEPS.value, 'runs': runs}
  write_results(_OUT.value, _NAME.value, report, markdown(report))
  print(markdown(report))


if __name__ == '__main__':
  host_memory.run(app.run, main)
