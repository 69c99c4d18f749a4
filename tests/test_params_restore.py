"""Params-only restore from a checkpoint the real Checkpointer wrote: any path form,
no optimizer state read, other model shapes refused, the source left untouched."""


import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import VOCAB, load_config, snapshot
from memgpt_jax.errors import UserError
from memgpt_jax.training import workdir as workdir_lib
from memgpt_jax.training.checkpointing import abstract_params
from memgpt_jax.training.optimizer import make_optimizer
from memgpt_jax.training.partitioner import make_partitioner
from memgpt_jax.training.workdir import load_params, saved_config

DEVICE = jax.sharding.SingleDeviceSharding(jax.devices()[0])


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
  """A workdir with the tiny model's train state at steps 2 and 4, other params in
  each, and the params of each step."""
  config = load_config('tiny')
  model, _ = abstract_params(config, VOCAB)
  state = make_partitioner(config, model, make_optimizer(config.train)).init_state()
  workdir = tmp_path_factory.mktemp('pretrained')
  checkpointer = workdir_lib.checkpointer(workdir, async_save=False)
  params = {}
  for step in (2, 4):
    params[step] = jax.tree.map(lambda x, s=step: x + s, state.params)
    checkpointer.save(step, state.replace(step=np.int32(step), params=params[step]), None,
                      config, {'process_count': 1})
  checkpointer.wait()
  checkpointer.close()
  return workdir, config, params


def params_on_device(config, **model):
  """The parameter shapes of `config` with `model` settings changed, on DEVICE."""
  config = config.copy_and_resolve_references()
  config.model.update(model)
  return abstract_params(config, VOCAB, DEVICE)[1]


def assert_same(restored, expected):
  assert jax.tree.structure(restored) == jax.tree.structure(expected)
  for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(expected)):
    assert got.sharding == DEVICE
    np.testing.assert_array_equal(got, want)


def test_restores_the_saved_params_from_any_path_form(saved):
  workdir, config, params = saved
  before = snapshot(workdir)
  abstract = params_on_device(config)
  assert_same(load_params(workdir, abstract), params[4])  # the latest step
  assert_same(load_params(workdir / 'checkpoints', abstract), params[4])
  assert_same(load_params(str(workdir / 'checkpoints' / '2'), abstract), params[2])
  assert saved_config(workdir / 'checkpoints' / '2').to_dict() == config.to_dict()
  assert snapshot(workdir) == before


def test_needs_no_optimizer_and_reads_none_of_its_state(saved, monkeypatch):
  workdir, config, params = saved
  model_only = params_on_device(config)  # what a model without any optimizer state wants
  read = []
  deserialize = ocp.type_handlers.ArrayHandler.deserialize

  async def recording(self, infos, args=None):
    read.extend(info.name for info in infos)
    return await deserialize(self, infos, args)

  monkeypatch.setattr(ocp.type_handlers.ArrayHandler, 'deserialize', recording)
  assert_same(load_params(workdir, model_only), params[4])
  assert sorted(read) == sorted(
      'params.' + jax.tree_util.keystr(keys, simple=True, separator='.')
      for keys, _ in jax.tree_util.tree_flatten_with_path(params[4])[0])


def test_another_model_shape_is_refused_naming_the_parameter(saved):
  workdir, config, _ = saved
  with pytest.raises(UserError, match=r'params/blocks_0/mlp/w1/kernel has shape '
                                      r'\(32, 64\) there, \(32, 128\) here'):
    load_params(workdir, params_on_device(config, mlp_dim=128))
  without_pointer = config.copy_and_resolve_references()
  without_pointer.model.pointer.enabled = False
  with pytest.raises(UserError, match=r'params/pointer/key/kernel of shape .* there is '
                                      'not here'):
    load_params(workdir, abstract_params(without_pointer, VOCAB)[1])


def test_a_path_without_a_finished_checkpoint_is_refused(saved, tmp_path):
  workdir, config, _ = saved
  (tmp_path / 'checkpoints').mkdir()
  for path in (tmp_path, tmp_path / 'checkpoints', tmp_path / 'missing',
               workdir / 'checkpoints' / '3', workdir / 'checkpoints' / '4' / 'state'):
    with pytest.raises(UserError, match='--config.init_from .* holds no checkpoint'):
      load_params(path, params_on_device(config))
    with pytest.raises(UserError, match='holds no checkpoint'):
      saved_config(path)
