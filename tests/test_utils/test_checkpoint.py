# Copyright (c) cllip_mm contributors. All rights reserved.
"""torch>=2.6 resume fix: MMEngine checkpoints load with ``weights_only=True``."""
import itertools
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.runner import Runner
from mmengine.utils import digit_version
from toy_model_helpers import ToyRecordStartIterHook, toy_cfg

from cllip_mm.utils import checkpoint_safe_globals, register_checkpoint_safe_globals

pytestmark = pytest.mark.skipif(
    digit_version(torch.__version__) < digit_version('2.6.0'),
    reason='torch < 2.6 does not default to weights_only=True')
_ids = itertools.count()


class UnknownClass:
    """Not allow-listed: weights_only loads must refuse it."""

    def __init__(self):
        self.payload = 1


class GetattrOfHistoryBuffer:
    """Pickles as ``builtins.getattr(HistoryBuffer, name)``."""

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return getattr, (HistoryBuffer, self.name)


def train(work_dir, resume_from=None, **kwargs):
    """Train the toy task with a real Runner; ``kwargs`` go to ``toy_cfg``."""
    # a unique experiment name per runner: runners built within the same second
    # would otherwise share one MessageHub (named after the timestamp)
    cfg = dict(toy_cfg(str(work_dir), **kwargs), experiment_name=f'toy_{next(_ids)}')
    if resume_from is not None:
        cfg.update(resume=True, load_from=resume_from)
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    return runner


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A real Runner checkpoint after 4 of 6 iterations (+ the runner)."""
    work_dir = str(tmp_path_factory.mktemp('resume'))
    runner = train(work_dir, max_iters=6, interval=2, stop_at=4)
    ckpt = osp.join(work_dir, 'iter_4.pth')
    assert osp.isfile(ckpt)
    return runner, ckpt


@pytest.fixture
def without_safe_globals():
    """Temporarily empty torch's user allow-list (restored afterwards)."""
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    yield
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(saved)


def test_checkpoint_needs_the_allow_list(trained, without_safe_globals):
    # What MMEngine's CheckpointLoader does (torch.load without weights_only)
    # fails without the fix, so the resume test below really exercises it.
    _, ckpt = trained
    with pytest.raises(pickle.UnpicklingError):
        torch.load(ckpt, map_location='cpu')
    register_checkpoint_safe_globals()
    checkpoint = torch.load(ckpt, map_location='cpu')
    message_hub = checkpoint['message_hub']
    assert isinstance(message_hub['log_scalars']['train/loss'], HistoryBuffer)
    assert isinstance(message_hub['runtime_info']['best_score'], np.float64)
    assert checkpoint['meta']['iter'] == 4


def test_runner_resumes_with_state(trained, tmp_path):
    runner1, ckpt = trained
    register_checkpoint_safe_globals()  # what `import cllip_mm` already did
    runner2 = train(tmp_path / 'resumed', resume_from=ckpt, max_iters=6, interval=2)
    reference = train(tmp_path / 'reference', max_iters=6, interval=2)

    start_iter = next(h for h in runner2.hooks if isinstance(h, ToyRecordStartIterHook))
    assert start_iter.start_iter == 4
    assert runner2.iter == 6
    # the message hub carries over: 4 resumed losses, then 2 new ones
    loss1 = runner1.message_hub.get_scalar('train/loss').data[0]
    loss2 = runner2.message_hub.get_scalar('train/loss').data[0]
    assert len(loss1) == 4 and len(loss2) == 6
    np.testing.assert_array_equal(loss2[:4], loss1)
    np.testing.assert_allclose(
        loss2, reference.message_hub.get_scalar('train/loss').data[0], rtol=1e-6)
    assert runner2.message_hub.get_info('best_score') <= \
        runner1.message_hub.get_info('best_score')
    # model, optimizer, schedulers and data order continue as if never stopped
    state = runner2.optim_wrapper.optimizer.state_dict()['state']
    assert all(int(s['step']) == 6 for s in state.values())
    assert runner2.optim_wrapper.get_lr()['lr'] == \
        pytest.approx(reference.optim_wrapper.get_lr()['lr'])
    for name, param in reference.model.state_dict().items():
        torch.testing.assert_close(runner2.model.state_dict()[name], param, msg=name)


def test_unknown_class_still_rejected(tmp_path):
    register_checkpoint_safe_globals()
    path = str(tmp_path / 'unknown.pth')
    torch.save({'obj': UnknownClass()}, path)
    with pytest.raises(pickle.UnpicklingError, match='UnknownClass'):
        torch.load(path, weights_only=True)


@pytest.mark.parametrize('name', ['__init__', 'update', '__dict__'])
def test_getattr_is_limited_to_history_buffer_statistics(tmp_path, name):
    register_checkpoint_safe_globals()
    ok = str(tmp_path / 'ok.pth')
    torch.save({'fn': GetattrOfHistoryBuffer('mean')}, ok)
    assert torch.load(ok, weights_only=True)['fn'] is HistoryBuffer.mean

    bad = str(tmp_path / 'bad.pth')
    torch.save({'fn': GetattrOfHistoryBuffer(name)}, bad)
    with pytest.raises(pickle.UnpicklingError, match='not allowed'):
        torch.load(bad, weights_only=True)


def test_numpy1_pickles_load(tmp_path):
    """Checkpoints written under numpy<2 name ``numpy.core.multiarray``."""
    register_checkpoint_safe_globals()
    data = {'array': np.arange(3, dtype=np.int64), 'scalar': np.float32(2.5)}
    path = str(tmp_path / 'np.pth')
    torch.save(data, path, _use_new_zipfile_serialization=False)
    with open(path, 'rb') as f:
        raw = f.read()
    assert b'numpy._core.multiarray' in raw
    with open(path, 'wb') as f:
        f.write(raw.replace(b'numpy._core.multiarray', b'numpy.core.multiarray'))
    loaded = torch.load(path, weights_only=True)
    np.testing.assert_array_equal(loaded['array'], data['array'])
    assert loaded['scalar'] == data['scalar'] and loaded['scalar'].dtype == np.float32


def test_register_is_idempotent():
    register_checkpoint_safe_globals()
    before = len(torch.serialization.get_safe_globals())
    register_checkpoint_safe_globals()
    assert len(torch.serialization.get_safe_globals()) == before
    assert set(checkpoint_safe_globals()) <= set(torch.serialization.get_safe_globals())
