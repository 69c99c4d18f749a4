"""Config files, overrides and validation: every bad value names itself."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
import pytest

from conftest import ROOT, VOCAB, init_params, load_config, tiny_model
from memgpt_jax import config_lib
from memgpt_jax import flops
from memgpt_jax.data.tokenizer import declared_vocab_size
from memgpt_jax.model.transformer import MemGPT, init_tokens
from memgpt_jax.errors import ConfigError
from memgpt_jax.model.config import ModelConfig
from memgpt_jax.training import checkpointing


@pytest.mark.parametrize('name', ['default', 'baseline_gpt', 'tiny'])
def test_shipped_configs_validate(name):
  config = load_config(name)
  model = config_lib.validate(config, vocab_size=258)
  assert model.seq_len == config.model.segment_len * config.model.num_segments


def test_baseline_is_the_default_without_memory_and_pointer():
  default, baseline = load_config('default'), load_config('baseline_gpt')
  assert not baseline.model.memory.enabled and not baseline.model.pointer.enabled
  assert baseline.model.num_segments == 1
  assert baseline.model.segment_len == default.model.segment_len * default.model.num_segments
  for key in ('d_model', 'num_layers', 'num_heads', 'mlp_dim'):
    assert baseline.model[key] == default.model[key]
  assert baseline.train == default.train


@pytest.mark.parametrize('key,value,message', [
    ('model.num_heads', 5, 'num_heads=5 does not divide model.d_model'),
    ('model.memory.slots.num_slots', -1, 'num_slots=-1 must be >= 0'),
    ('model.memory.kind', 'lstm', "memory.kind='lstm' is not one of"),
    ('model.memory.slots.gate', 'lstm', "memory.slots.gate='lstm' is not one of"),
    ('model.memory.delta.feature_map', 'relu', "feature_map='relu' is not one of"),
    ('model.memory.delta.write_strength', 'max', "write_strength='max' is not one of"),
    ('model.memory.delta.read_gate', 'x', "read_gate='x' is not one of"),
    ('model.memory.delta.write_form', 'x', "write_form='x' is not one of"),
    ('model.memory.delta.key_dim', -1, 'key_dim=-1 must be >= 0'),
    ('model.memory.delta.chunk_size', 0, 'chunk_size=0 must be >= 1'),
    ('model.memory.delta.decay_init', 1.0, 'decay_init=1.0 must be in'),
    ('model.position', 'alibi', "position='alibi' is not one of"),
    ('model.memory.layers', '0,9', 'indices must be in'),
    ('model.memory.layers', 'first', "use 'all' or comma-separated"),
    ('model.segment_len', 0, 'segment_len=0 must be >= 1'),
    ('model.init_std', 0.0, 'init_std=0.0 must be > 0'),
    ('train.batch_size', 0, 'train.batch_size=0 must be >= 1'),
    ('train.warmup_steps', -1, 'warmup_steps=-1 must be >= 0'),
    ('train.write_cost', -0.1, 'write_cost=-0.1 must be >= 0'),
    ('data.validation_fraction', 1.5, 'validation_fraction=1.5'),
])
def test_bad_values_raise_one_line_errors(key, value, message):
  config = load_config('default')
  config_lib.set_dotted(config, key, value)
  with pytest.raises(ConfigError, match=message.replace('(', r'\(')) as error:
    config_lib.validate(config, vocab_size=258)
  assert '\n' not in str(error.value)


def test_batch_must_split_over_processes():
  config = load_config('default')
  config.train.batch_size, config.train.grad_accum_steps = 6, 1
  with pytest.raises(ConfigError, match='not divisible by the 4 processes'):
    config_lib.validate(config, vocab_size=258, num_processes=4)


def test_memory_off_needs_no_slots():
  config = load_config('default')
  config.model.memory.enabled = False
  config.model.memory.slots.num_slots = 0
  assert ModelConfig.from_config(config.model, 258).memory_slots == 0


def test_slot_memory_needs_slots_and_pointer_write_strength_needs_the_pointer():
  config = load_config('default')
  config.model.memory.kind = 'slots'
  config.model.memory.slots.num_slots = 0
  with pytest.raises(ConfigError, match='num_slots=0 with memory.enabled=True'):
    ModelConfig.from_config(config.model, 258)
  config = load_config('default')
  config.model.memory.delta.write_strength = 'pointer'
  config.model.pointer.enabled = False
  with pytest.raises(ConfigError, match="write_strength='pointer' needs"):
    ModelConfig.from_config(config.model, 258)


def test_delta_widths_default_to_the_head_dimension():
  config = load_config('default')
  cfg = ModelConfig.from_config(config.model, 258)
  assert cfg.delta.key_dim == cfg.delta.value_dim == cfg.head_dim
  config.model.memory.delta.key_dim = 7
  assert ModelConfig.from_config(config.model, 258).delta.key_dim == 7


def test_config_variants_apply_in_order_and_unknown_ones_are_named():
  base = config_lib.load_config(ROOT / 'configs' / 'synthetic.py')
  assert base.model.memory.kind == 'delta'
  both = config_lib.load_config(f'{ROOT / "configs" / "synthetic.py"}:slots,gru')
  assert both.model.memory.kind == 'slots' and both.model.memory.slots.gate == 'gru'
  with pytest.raises(ConfigError, match="unknown config variant 'nope'"):
    config_lib.load_config(f'{ROOT / "configs" / "synthetic.py"}:slots,nope')


def test_every_model_setting_is_declared_once_and_used():
  """The keys under config.model (configs/default.py) are exactly the settings
  ModelConfig declares, each with its constraint: none unused, none undeclared."""

  def declared(cls, prefix=''):
    for field in dataclasses.fields(cls):
      if field.name != 'vocab_size':  # from the tokenizer
        key = prefix + (field.metadata['key'] or field.name)
        yield from (declared(field.type, key + '.') if dataclasses.is_dataclass(field.type)
                    else [key])

  assert sorted(declared(ModelConfig)) == sorted(config_lib.flatten(load_config('default').model))


def test_sequence_not_a_multiple_of_the_segment_is_rejected():
  model, cfg = tiny_model()
  with pytest.raises(ValueError, match='not a multiple of segment_len'):
    jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, cfg.segment_len + 1), jnp.int32))


def test_missing_config_file():
  with pytest.raises(ConfigError, match='does not exist'):
    config_lib.load_config(ROOT / 'configs' / 'nope.py')


def test_flop_count_of_the_plain_gpt_matches_its_parameters():
  """Forward FLOPs/token = 2 x (matmul weights) + attention + logits, for the baseline."""
  config = config_lib.plain_gpt(load_config('tiny'))
  cfg = config_lib.validate(config, vocab_size=VOCAB)
  params = init_params(MemGPT(cfg), batch_size=1)['params']
  matmul = sum(x.size for x in jax.tree.leaves(params) if x.ndim >= 2) - VOCAB * cfg.d_model
  attention = 4 * cfg.d_model * cfg.segment_len * cfg.num_layers
  expected = 2 * matmul + attention + 2 * cfg.d_model * VOCAB
  assert flops.forward_flops_per_token(cfg) == expected


def _tiny_memgpt(memory_kind: str) -> ModelConfig:
  config = load_config('tiny')
  config.model.memory.kind = memory_kind
  config.model.num_layers = 2
  cfg = config_lib.validate(config, vocab_size=VOCAB)
  # The numbers the hand counts below are made of: a change here must redo them.
  assert (cfg.d_model, cfg.num_heads, cfg.head_dim, cfg.mlp_dim, cfg.mlp_type) == (
      32, 2, 16, 64, 'swiglu')
  assert (cfg.num_layers, cfg.memory_layers, cfg.segment_len, cfg.vocab_size) == (
      2, (0, 1), 8, 64)
  assert (cfg.delta.key_dim, cfg.delta.value_dim, cfg.delta.key_shift) == (16, 16, True)
  assert (cfg.delta.write_strength, cfg.delta.decay, cfg.delta.read_gate) == (
      'learned', 'none', 'token')
  assert (cfg.slots.num_slots, cfg.slots.gate) == (4, 'fixed')
  assert (cfg.pointer_heads, cfg.pointer_head_dim, cfg.pointer_cache_len) == (1, 16, 8)
  assert cfg.tie_embeddings
  return cfg


# Per token, every layer: d = 32, H = 2 heads of D = 16, MLP 64 (SwiGLU).
_PROJECTIONS = 3 * 2 * 32 * 32 + 2 * 32 * 32  # q, k, v = W x (2 d d each); out (2 d d)
_MLP = 2 * 2 * 32 * 64 + 2 * 64 * 32  # w1 x and w3 x (2 d m each); w2 h (2 m d)
# After the last layer: the pointer (1 head of d_p = 16) and the tied logits (V = 64).
_POINTER = (2 * 32 * 16  # query W_q h (2 d d_p)
            + 2 * 32 * 16  # key W_k h of this token, cached for later ones (2 d d_p)
            + 2 * 16 * (8 + 8)  # scores q . k over P + T = 16 candidates (2 d_p C)
            + 2 * 32)  # sentinel w_s . h (2 d)
_LOGITS = 2 * 32 * 64  # E h (2 d V)


def test_flop_count_of_the_delta_memgpt_by_hand():
  """Forward FLOPs/token of the tiny delta-memory MemGPT, pointer on, term by term."""
  cfg = _tiny_memgpt('delta')
  attention = (2 * 32 * 8  # scores q . k over the T = 8 window keys (2 d T)
               + 2 * 8 * 32)  # weighted sum of the T values (2 T d)
  read = (2 * 32 * 2 * 16  # q = W_q x (2 d H d_k)
          + 2 * 2 * 16 * 16  # r = q S per head (2 H d_k d_v)
          + 2 * 32 * 2)  # token read gate w_g x (2 d H)
  # The write in its recurrent form (the chunked form runs here: the same update). A
  # segment's first key projects the previous segment's last x again: recomputation,
  # which model FLOPs leave out.
  write = (2 * 64 * 2 * 16  # k = W_k [x_t ; x_t-1] (2 (2d) H d_k)
           + 2 * 32 * 2 * 16  # v = W_v x (2 d H d_v)
           + 2 * 32 * 2  # strength w_b x (2 d H)
           + 2 * 2 * 16 * 16  # S^T k (2 H d_k d_v)
           + 2 * 2 * 16 * 16)  # S += beta k (v - S^T k)^T, rank 1 (2 H d_k d_v)
  layer = _PROJECTIONS + _MLP + attention + read + write
  assert (layer, read, write) == (33024, 3200, 8320)
  expected = 2 * layer + _POINTER + _LOGITS  # 66048 + 2624 + 4096
  assert flops.forward_flops_per_token(cfg) == expected == 72768
  assert flops.train_flops_per_token(cfg) == 3 * expected


def test_flop_count_of_the_slot_memgpt_by_hand():
  """Forward FLOPs/token of the tiny slot-memory MemGPT (S = 4 slots), term by term."""
  cfg = _tiny_memgpt('slots')
  attention = (2 * 32 * (8 + 4)  # scores over the T = 8 window keys and S = 4 slots
               + 2 * (8 + 4) * 32)  # weighted sum of their values
  per_segment = (2 * 2 * 4 * 32 * 32  # read: slot keys and values W_k M, W_v M (2 S d d each)
                 + 2 * 4 * 32 * 32  # write: slot queries W_q norm(M) (2 S d d)
                 + 2 * 2 * 8 * 32 * 32  # token keys and values W_k h, W_v h (2 T d d each)
                 + 2 * 4 * 8 * 32  # cross-attention scores, S x T (2 S T d)
                 + 2 * 4 * 8 * 32  # its weighted sum of values (2 S T d)
                 + 2 * 4 * 32 * 32)  # output W_o U (2 S d d); the fixed gate is elementwise
  memory = per_segment / 8  # once per segment, shared by its T = 8 tokens
  layer = _PROJECTIONS + _MLP + attention + memory
  assert (layer, per_segment) == (30720, 69632)
  expected = 2 * layer + _POINTER + _LOGITS  # 61440 + 2624 + 4096
  assert flops.forward_flops_per_token(cfg) == expected == 68160


def test_flop_count_of_the_encoder_decoder_by_hand():
  """The tiny delta MemGPT as the decoder of an encoder of one layer reading sources of
  2 segments (16 tokens) for targets of 3 (24): per target token, what the decoder
  counts, its cross-attention, and 16/24 of the encoder's work per source token."""
  config = load_config('tiny')
  config.model.num_layers = 2
  config.model.update(arch='encoder_decoder')
  config.model.encoder.update(num_layers=1, num_segments=2, cross_attention='all')
  cfg = ModelConfig.from_config(config.model, VOCAB)
  assert (cfg.num_segments, cfg.source_len) == (3, 16)
  decoder = 2 * 33024 + _POINTER + 2 * 16 * 16  # the pointer's 16 more candidates
  cross = 2 * (2 * 2 * 32 * 32  # query W_q h and output W_o u (2 d d each)
               + 2 * 32 * 16  # scores over the 16 source positions (2 d S)
               + 2 * 16 * 32)  # weighted sum of their values (2 S d)
  per_source_token = (33024  # its one block (the window, memory read and write as above)
                      + 2 * (2 * 2 * 32 * 32)  # each decoder layer's K, V (2 d d each)
                      + 2 * 32 * 16)  # the pointer's key of each source position
  expected = decoder + cross + per_source_token * 16 / 24 + _LOGITS
  assert flops.forward_flops_per_token(cfg) == expected


def test_peak_table_picks_the_most_specific_device():
  assert flops.peak_flops('NVIDIA H100 PCIe', 'bfloat16') == 756e12
  assert flops.peak_flops('NVIDIA H100 80GB HBM3', 'bfloat16') == 989e12
  assert flops.peak_flops('cpu', 'float32') is None


def _config_files():
  return sorted(p.name for p in (ROOT / 'configs').glob('*.py') if p.name != 'grids.py')


@pytest.mark.parametrize('name', _config_files())
def test_every_config_file_gives_a_valid_config(name):
  config = config_lib.load_config(ROOT / 'configs' / name)
  config_lib.validate(config, declared_vocab_size(config.data))


@pytest.mark.parametrize('size,millions', [('125m', 125), ('350m', 350), ('1_3b', 1300)])
def test_model_size_configs_have_the_parameters_of_their_names(size, millions):
  """The plain GPT within 15% of its name (a 32K vocabulary where GPT-2 had 50K); its
  MemGPT twin within 10% of the GPT."""
  counts = []
  for variant in ('', ':memgpt'):
    config = config_lib.load_config(f'{ROOT}/configs/gpt_{size}.py{variant}')
    model = MemGPT(config_lib.validate(config, declared_vocab_size(config.data)))
    shapes = jax.eval_shape(model.init, jax.random.key(0), init_tokens(model.cfg))
    counts.append(sum(x.size for x in jax.tree.leaves(shapes)))
  assert abs(counts[0] / (millions * 1e6) - 1) < 0.15, counts
  assert counts[0] < counts[1] < 1.1 * counts[0], counts


def test_a_config_saved_before_a_setting_existed_rebuilds_its_model(tmp_path):
  """A checkpoint's config lacking settings added since (here the pointer's mixture,
  the biases, the auxiliary loss) reads with them at their defaults, which are the
  behaviour from before they existed; what it holds is kept."""
  saved = json.loads(json.dumps(load_config('tiny').to_dict(), default=str))
  for section, key in (('model', 'bias'), ('train', 'pointer_aux_loss')):
    del saved[section][key]
  del saved['model']['pointer']['mixture']
  saved['model']['d_model'] = 48
  ocp.Checkpointer(ocp.JsonCheckpointHandler()).save(tmp_path / 'config', saved)
  config = checkpointing.read_config(tmp_path)
  assert config.model.pointer.mixture == 'sentinel' and config.model.bias == 'none'
  assert config.train.pointer_aux_loss == 0.0 and config.model.d_model == 48
  assert ModelConfig.from_config(config.model, 258).d_model == 48


def test_a_saved_config_keeps_its_tuples_so_dotted_flags_can_override_them(tmp_path):
  saved = config_lib.default_config()
  saved.train.eval_position_buckets = (128,)
  (tmp_path / 'config.json').write_text(saved.to_json_best_effort())
  config = config_lib.load_config(f'{ROOT}/configs/imported.py:{tmp_path}')
  assert config.train.eval_position_buckets == (128,)
  config.train.eval_position_buckets = (256, 1024)  # what a dotted flag does: same type
