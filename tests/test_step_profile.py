"""experiments/step_profile.py: a step's ops are charged to the parts of the model
that run them (what experiments/bench.py reports as where the time goes)."""

import pytest

from conftest import load_module
from multidevice import BATCH, fixed_batch, model_and_optimizer, parallel_config
from memgpt_jax.training.partitioner import make_partitioner

step_profile = load_module('experiments/step_profile.py')


@pytest.mark.parametrize('op_name,expected', [
    ('jit(train_step)/jvp(MemGPT)/MemGPT.run_segments/while/body/closed_call/MemGPT.step/'
     'MemGPT.process_chunk/blocks_0/mlp/w1/dot_general', ('MLP', 'forward')),
    ('jit(train_step)/transpose(jvp(MemGPT))/MemGPT.run_segments/closed_call/MemGPT.step/'
     'MemGPT.process_chunk/blocks_1/attention/memory_read/project/dot_general',
     ('memory read', 'backward')),
    ('jit(train_step)/jvp(MemGPT)/MemGPT.run_segments/closed_call/MemGPT.step/'
     'MemGPT.write_segment/memories_0/bhtk,bhik->bhti/dot_general', ('memory write', 'forward')),
    ('jit(train_step)/transpose(jvp(MemGPT))/MemGPT.step/MemGPT.process_chunk/pointer/query/'
     'dot_general', ('pointer', 'backward')),
    ('jit(train_step)/jvp(jit(log_softmax))/reduce_max', ('loss', 'forward')),
    ('jit(train_step)/jit(clip)/min', ('optimizer', '')),
])
def test_op_names_place_ops_in_parts(op_name, expected):
  assert step_profile.part_of(op_name) == expected


def test_collective_bytes_count_every_result_of_every_collective():
  hlo = """
  %all-gather.1 = f32[8,4]{1,0} all-gather(f32[2,4]{1,0} %p0), channel_id=1, dimensions={0}
  %add.2 = f32[8,4]{1,0} add(f32[8,4]{1,0} %all-gather.1, f32[8,4]{1,0} %all-gather.1)
  %all-reduce.3 = (f32[4]{0}, /*index=1*/bf16[2,3]{1,0}) all-reduce(f32[4]{0} %a, bf16[2,3]{1,0} %b), to_apply=%sum
  ROOT %reduce-scatter.4 = f32[2]{0} reduce-scatter(f32[16]{0} %c), dimensions={0}
  """
  assert step_profile.collective_bytes(hlo) == {
      'all-gather': 8 * 4 * 4, 'all-reduce': 4 * 4 + 2 * 3 * 2, 'reduce-scatter': 2 * 4}


def test_the_profile_of_a_real_step_covers_the_model():
  """A tiny MemGPT's step: its time lands in the model's parts, the memory's and the
  pointer's among them, and most of its ops carry the names that place them. Those
  that do not are copies and broadcasts XLA adds, whose share of the time depends on
  the machine's memory speed (5-29% seen): what is asserted of them is their count."""
  config = parallel_config()
  partitioner = make_partitioner(config, *model_and_optimizer(config))
  state, batch = partitioner.init_state(), fixed_batch(1)

  def run_step():
    nonlocal state
    state, metrics = partitioner.train_step(state, batch)
    metrics['loss'].block_until_ready()

  run_step()  # compiled before the profile
  hlo = partitioner.trace_step(BATCH, batch['inputs'].shape[1]).lower().compile().as_text()
  profile, kinds, ops = step_profile.profile(run_step, hlo, steps=2, heaviest=10**6)
  for part in ('attention', 'MLP', 'memory read', 'memory write', 'pointer', 'loss',
               'optimizer'):
    assert sum(profile.get(part, {}).values()) > 0, (part, profile)
  assert set(profile['memory write']) == {'forward', 'backward'}
  # 80% of the ops are named here; with the names lost, none would be.
  assert sum(bool(op['name']) for op in ops) > 2 / 3 * len(ops), ops
  # The same time by kind of op and op by op: the matrix multiplies among it, nothing
  # lost, the heaviest first.
  total = sum(sum(times.values()) for times in profile.values())
  assert kinds['matmul'] > 0 and set(kinds) <= set(step_profile.KINDS), kinds
  assert sum(kinds.values()) == pytest.approx(total)
  assert sum(op['ms'] for op in ops) == pytest.approx(total)
  assert [op['ms'] for op in ops] == sorted((op['ms'] for op in ops), reverse=True)


def test_op_kinds_find_matmuls_inside_fusions_and_library_calls():
  hlo = """
%fused_dot (p0: f32[4,4], p1: f32[4,4]) -> f32[4,4] {
  %p0 = f32[4,4]{1,0} parameter(0)
  %p1 = f32[4,4]{1,0} parameter(1)
  ROOT %dot.1 = f32[4,4]{1,0} dot(%p0, %p1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

%fused_tanh (p0.1: f32[4,4]) -> f32[4,4] {
  %p0.1 = f32[4,4]{1,0} parameter(0)
  ROOT %tanh.1 = f32[4,4]{1,0} tanh(%p0.1)
}

ENTRY %main (a: f32[4,4], b: bf16[1,8,2,64]) -> f32[4,4] {
  %a = f32[4,4]{1,0} parameter(0)
  %b = bf16[1,8,2,64]{3,2,1,0} parameter(1)
  %gemm_fusion = f32[4,4]{1,0} fusion(%a, %a), kind=kCustom, calls=%fused_dot
  %cublas-gemm.2 = (f32[4,4]{1,0}, s8[0]{0}) custom-call(%a, %a), custom_call_target="__cublas$gemm"
  %custom-call.3 = (bf16[1,8,2,64]{3,2,1,0}, u8[0]{0}) custom-call(%b, %b, %b), custom_call_target="__cudnn$fmhaSoftmax", backend_config={"bmm1_dot":"gemm"}
  %loop_fusion = f32[4,4]{1,0} fusion(%gemm_fusion), kind=kLoop, calls=%fused_tanh
  %copy.4 = f32[4,4]{0,1} copy(%loop_fusion)
  %all-reduce-start.5 = f32[4,4]{1,0} all-reduce-start(%copy.4), to_apply=%fused_tanh
  ROOT %all-reduce-done.5 = f32[4,4]{1,0} all-reduce-done(%all-reduce-start.5)
}
"""
  ops = step_profile.step_ops(hlo)
  assert {op: ops[op].kind for op in ('gemm_fusion', 'cublas-gemm.2', 'custom-call.3',
                                      'loop_fusion', 'copy.4', 'all-reduce-start.5', 'a')} == {
      'gemm_fusion': 'matmul', 'cublas-gemm.2': 'matmul', 'custom-call.3': 'attention kernel',
      'loop_fusion': 'other fusions', 'copy.4': 'copies', 'all-reduce-start.5': 'collectives',
      'a': 'other ops'}
  assert ops['loop_fusion'].result == 'f32[4,4]' and ops['loop_fusion'].name == ''
