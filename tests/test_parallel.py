"""Parallelism: mesh shapes, logical-axis rules, and (on 8 simulated CPU devices, in
a subprocess) the same update from one device, data, fsdp with tensor parallel, pmap
(in the streams layout and for the encoder-decoder too)."""

import dataclasses

import jax
from jax.sharding import AbstractMesh, PartitionSpec as P
import ml_collections
import numpy as np
import pytest

from conftest import VOCAB, load_config
import layouts_check
from memgpt_jax.errors import ConfigError, UserError
from memgpt_jax.model.transformer import MemGPT
from memgpt_jax.parallel import distributed
from memgpt_jax.parallel.mesh import AXES, mesh_shape
from memgpt_jax.training.partitioner import PmapPartitioner, make_partitioner
from memgpt_jax.parallel.sharding import logical_rules, tree_shardings
from memgpt_jax.training import steps
from multidevice import (fixed_batch, last_json_line, model_and_optimizer, parallel_config,
                         run_scripts)


def mesh_config(**axes) -> ml_collections.ConfigDict:
  config = load_config('default').mesh
  config.update(axes)
  return config


@pytest.mark.parametrize('axes,devices,expected', [
    ({}, 8, (8, 1, 1)),
    ({'data': 2, 'fsdp': -1}, 8, (2, 4, 1)),
    ({'data': 1, 'tensor': 4, 'fsdp': -1}, 8, (1, 2, 4)),
    ({'data': 2, 'fsdp': 2, 'tensor': 2}, 8, (2, 2, 2)),
])
def test_mesh_shape_fills_in_the_rest(axes, devices, expected):
  assert tuple(mesh_shape(mesh_config(**axes), devices).values()) == expected


@pytest.mark.parametrize('axes,message', [
    ({'data': 3}, 'mesh data=3 x fsdp=1 x tensor=1 does not fit the 8 devices'),
    ({'fsdp': 3}, 'data=-1 x fsdp=3 x tensor=1 does not fit the 8 devices'),
    ({'fsdp': -1}, 'mesh.data and mesh.fsdp are both -1'),
    ({'tensor': 0}, 'mesh.tensor=0 must be at least 1'),
])
def test_mesh_that_does_not_fit_is_a_config_error(axes, message):
  with pytest.raises(ConfigError, match=message):
    mesh_shape(mesh_config(**axes), 8)


def state_specs(mesh_axes: dict[str, int], vocab: int = VOCAB,
                scan_layers: bool = False) -> steps.TrainState:
  """The PartitionSpecs the default rules give the tiny model's train state."""
  config = parallel_config()
  config.model.scan_layers = scan_layers
  model, optimizer = model_and_optimizer(config)
  model = MemGPT(dataclasses.replace(model.cfg, vocab_size=vocab))
  boxed = jax.eval_shape(
      lambda: steps.init_train_state(model, optimizer, jax.random.PRNGKey(0), 1))
  mesh = AbstractMesh(tuple(mesh_axes[a] for a in AXES), AXES)
  shardings = tree_shardings(boxed, mesh, logical_rules(config.mesh))
  return jax.tree.map(lambda s: s.spec, shardings)


@pytest.mark.parametrize('scan_layers', [False, True])
def test_rules_shard_parameters_and_their_optimizer_state(scan_layers):
  """With model.scan_layers every layer parameter has a leading 'layers' axis, which
  no rule names: each device holds its shards of every layer."""
  specs = state_specs({'data': 1, 'fsdp': 2, 'tensor': 2}, scan_layers=scan_layers)
  params = specs.params
  block = params['block_groups']['block_0'] if scan_layers else params['blocks_0']
  memory = params['memories'] if scan_layers else params['memories_0']
  spec = lambda *axes: P(None, *axes) if scan_layers else P(*axes)
  assert params['embed']['embedding'] == P('tensor', 'fsdp')
  assert block['attention']['query']['kernel'] == spec('fsdp', 'tensor', None)
  assert block['attention']['out']['kernel'] == spec('tensor', None, 'fsdp')
  assert block['mlp']['w1']['kernel'] == spec('fsdp', 'tensor')
  assert block['mlp']['w2']['kernel'] == spec('tensor', 'fsdp')
  assert block['attention_norm']['scale'] == spec('fsdp')
  assert memory['project']['kernel'] == spec('fsdp', 'tensor', None)
  assert specs.step == P() and specs.rng == P()
  # Adam's two moments are laid out exactly like the parameters.
  moments = [spec for path, spec in jax.tree_util.tree_flatten_with_path(specs.opt_state)[0]
             if any(getattr(key, 'name', None) in ('mu', 'nu') for key in path)]
  assert moments == 2 * jax.tree.leaves(params)


def test_a_dimension_the_mesh_does_not_divide_stays_whole():
  """The byte vocabulary (258) cannot split 4 ways; the width still does."""
  specs = state_specs({'data': 1, 'fsdp': 2, 'tensor': 4}, vocab=258)
  assert specs.params['embed']['embedding'] == P(None, 'fsdp')


def test_rules_must_name_mesh_axes():
  config = mesh_config(rules=(('embed', 'model'),))
  with pytest.raises(ConfigError, match="maps 'embed' to 'model', which is not a mesh axis"):
    logical_rules(config)
  assert logical_rules(mesh_config(rules=[['batch', ['data', 'fsdp']]])) == (
      ('batch', ('data', 'fsdp')),)  # as the JSON round trip of a saved config gives them


def test_unknown_parallelism_is_a_config_error():
  config = parallel_config()
  config.parallelism = 'spmd'
  with pytest.raises(ConfigError, match="parallelism='spmd' is not one of 'jit', 'pmap'"):
    make_partitioner(config, *model_and_optimizer(config))


def test_pmap_refuses_a_sharded_mesh():
  config = parallel_config(fsdp=2)
  config.parallelism = 'pmap'
  with pytest.raises(ConfigError, match="parallelism='pmap' keeps a full copy"):
    PmapPartitioner(config, *model_and_optimizer(config))


@pytest.mark.parametrize('env,expected', [
    ({'SLURM_STEP_NODELIST': 'n[1-2]', 'SLURM_NTASKS': '4'}, True),
    ({'SLURM_NTASKS': '4'}, False),  # a batch script, not an srun step
    ({'SLURM_STEP_NODELIST': 'n1', 'SLURM_NTASKS': '1'}, False),
    ({'OMPI_COMM_WORLD_SIZE': '2'}, True),
    ({}, False),
])
def test_cluster_launches_are_detected(monkeypatch, env, expected):
  for name in ('SLURM_STEP_NODELIST', 'SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE'):
    monkeypatch.delenv(name, raising=False)
  for name, value in env.items():
    monkeypatch.setenv(name, value)
  assert distributed.launched_as_one_of_many() is expected
  if not expected:  # 'auto' leaves a lone process alone
    assert distributed.initialize('auto') is False


def test_distributed_off_with_a_coordinator_is_refused():
  with pytest.raises(UserError, match='--distributed=off contradicts'):
    distributed.initialize('off', coordinator_address='localhost:1234')


@pytest.fixture(scope='module')
def layouts(tmp_path_factory):
  """tests/layouts_check.py on 8 simulated devices: 2 updates under each layout, and
  the same 2 on this process's one device (the program that
  test_a_second_run_of_the_same_setup_compiles_nothing compiles too)."""
  params_file = tmp_path_factory.mktemp('layouts') / 'params.npz'
  ((stdout, stderr),) = run_scripts(('layouts_check.py', str(params_file)), devices=8,
                                    timeout=600)
  results = last_json_line(stdout)
  results['compiler_log'] = stderr
  saved = np.load(params_file)
  results['params'] = {name: [saved[key] for key in sorted(saved.files)
                              if key.startswith(f'{name}:')]
                       for name in {**layouts_check.LAYOUTS, **layouts_check.STREAMS_LAYOUTS,
                                    **layouts_check.ENCODER_DECODER_LAYOUTS}}
  results['layouts']['one device'], results['params']['one device'] = layouts_check.train(
      {}, 'jit')
  (results['layouts']['one device, streams'],
   results['params']['one device, streams']) = layouts_check.train({}, 'jit', streams=True)
  (results['layouts']['one device, encoder_decoder'],
   results['params']['one device, encoder_decoder']) = layouts_check.train(
       {}, 'jit', encoder_decoder=True)
  return results


@pytest.mark.parametrize('layouts_of,reference', [
    (layouts_check.LAYOUTS, 'one device'),
    (layouts_check.STREAMS_LAYOUTS, 'one device, streams'),
    (layouts_check.ENCODER_DECODER_LAYOUTS, 'one device, encoder_decoder')])
def test_every_layout_makes_the_same_update(layouts, layouts_of, reference):
  """Each layout's losses and parameters (and in the streams layout the state carried
  for every row) after 2 updates are those of one device."""
  reports, params = layouts['layouts'], layouts['params']
  assert reports[reference]['moved'] > 1e-3  # the two updates really moved the parameters
  # Adam's first updates are about g / |g|: where g is near 0, rounding that differs
  # between layouts shows at a few 1e-5 of a parameter, where a layout that got the
  # math wrong is off by as much as the updates move.
  tolerance = 0.01 * reports[reference]['moved']
  for name in layouts_of:
    np.testing.assert_allclose(reports[name]['losses'], reports[reference]['losses'],
                               rtol=1e-5, err_msg=name)
    assert len(params[name]) == len(params[reference]), name
    for got, want in zip(params[name], params[reference]):
      np.testing.assert_allclose(got, want, atol=tolerance, err_msg=name)
  # The carried state changes the second step's loss: the streams are really carried.
  if layouts_of is layouts_check.STREAMS_LAYOUTS:
    assert abs(reports[reference]['losses'][1] - reports['one device']['losses'][1]) > 1e-4


def test_no_layout_makes_the_compiler_replicate_a_tensor(layouts):
  """Activations stay split like the batch rows (the model's constrain() calls), so
  the partitioner never has to gather a whole tensor on every device to re-split it
  (XLA logs each such fallback)."""
  assert 'Involuntary full rematerialization' not in layouts['compiler_log']


def test_fsdp_and_tensor_parallel_split_the_state(layouts):
  reports = layouts['layouts']
  whole = reports['one device']
  assert reports['data=8']['param_bytes'] == whole['param_bytes']  # replicas
  for kind in ('param_bytes', 'opt_state_bytes'):
    assert reports['fsdp=8'][kind] <= whole[kind] / 8 * 1.01, kind
  # fsdp splits every parameter in 2, tensor the heads and MLP units again in 2.
  both = reports['data=2 x fsdp=2 x tensor=2']
  for kind in ('param_bytes', 'opt_state_bytes'):
    assert both[kind] < 0.35 * whole[kind], kind
  assert both['query_spec'] == "P('fsdp', 'tensor', None)"


def test_bad_layouts_are_one_line_config_errors(layouts):
  errors = layouts['errors']
  assert 'mesh data=3 x fsdp=1 x tensor=1 does not fit the 8 devices' in errors['mesh']
  assert 'train.batch_size=4 is not divisible by mesh.data x mesh.fsdp = 8' in errors['batch']


def test_a_second_run_of_the_same_setup_compiles_nothing():
  """Another partitioner of the same setup (a resume, another seed, other logging, a
  longer run at another learning rate) reuses the programs the first one traced and
  compiled: no trace, no compile; the seed and the schedule still take effect."""
  first = make_partitioner(parallel_config(), *model_and_optimizer(parallel_config()))
  first.train_step(first.init_state(), fixed_batch(1))
  config = parallel_config()
  config.seed, config.train.log_every = 7, 1
  config.train.update(num_steps=90, learning_rate=1e-3)  # no warmup: the first step's
  events = []
  record = lambda event, duration, **kwargs: events.append(event)
  jax.monitoring.register_event_duration_secs_listener(record)
  try:
    second = make_partitioner(config, *model_and_optimizer(config))
    state = second.init_state()
    start = jax.device_get(state.params)
    state, metrics = second.train_step(state, fixed_batch(1))
  finally:
    jax.monitoring.unregister_event_duration_listener(record)
  assert np.isfinite(float(metrics['loss']))
  assert not [e for e in events if e.endswith(('trace_duration', 'compile_duration'))], events
  # Adam's first update moves a weight by about the learning rate (lr * (1 + decay * w)).
  moved = np.abs(jax.device_get(state.params['embed']['embedding']) - start['embed']['embedding'])
  np.testing.assert_allclose(moved.max(), 1e-3, rtol=0.01)
  first_embedding = jax.device_get(first.init_state().params['embed']['embedding'])
  # The seed still reaches the parameters.
  assert not np.allclose(start['embed']['embedding'], first_embedding)
