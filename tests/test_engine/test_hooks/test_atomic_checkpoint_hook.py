# Copyright (c) cllip_mm contributors. All rights reserved.
"""AtomicCheckpointHook: a full disk or an interrupted write never costs the last
complete checkpoint, and training resumes from it to the uninterrupted result."""
import errno
import itertools
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio.backends import LocalBackend
from mmengine.runner import Runner
from toy_model_helpers import toy_cfg

import cllip_mm  # noqa: F401  registers the hooks, allow-lists checkpoint types
from cllip_mm.engine.hooks import CheckpointSaveError, atomic_write_bytes

_ids = itertools.count()


def make_cfg(work_dir, hook='AtomicCheckpointHook', **kwargs):
    cfg = toy_cfg(str(work_dir), max_iters=6, interval=2, **kwargs)
    cfg['default_hooks']['checkpoint'].update(type=hook, max_keep_ckpts=1)
    cfg['experiment_name'] = f'atomic_{next(_ids)}'
    return cfg


def train(cfg, **extra):
    runner = Runner.from_cfg(Config(dict(cfg, **extra)))
    runner.train()
    return runner


@pytest.fixture
def full_disk_at(monkeypatch):
    """Make writes of files whose name starts with ``prefix`` fail like a full disk,
    after writing half of the bytes."""
    put = LocalBackend.put

    def install(prefix):
        def failing_put(self, obj, filepath):
            if osp.basename(str(filepath)).startswith(prefix):
                with open(filepath, 'wb') as f:
                    f.write(obj[:len(obj) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filepath))
            return put(self, obj, filepath)
        monkeypatch.setattr(LocalBackend, 'put', failing_put)
    yield install
    monkeypatch.setattr(LocalBackend, 'put', put)


def last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def test_full_disk_keeps_the_previous_checkpoint_and_resumes(tmp_path, full_disk_at,
                                                             monkeypatch):
    work_dir = str(tmp_path / 'work_dir')
    full_disk_at('iter_4.pth')
    with pytest.raises(CheckpointSaveError) as err:
        train(make_cfg(work_dir))
    msg = str(err.value)
    assert err.value.errno == errno.ENOSPC and 'No space left on device' in msg
    assert 'iter_4.pth' in msg and osp.join(work_dir, 'iter_2.pth') in msg
    # max_keep_ckpts=1, yet iter_2 is kept: it is removed only after iter_4 is complete
    files = sorted(os.listdir(work_dir))
    assert 'iter_2.pth' in files and 'iter_4.pth' not in files
    assert not [f for f in files if f.endswith('.part')]
    assert last_checkpoint(work_dir) == osp.join(work_dir, 'iter_2.pth')
    assert torch.load(osp.join(work_dir, 'iter_2.pth'))['meta']['iter'] == 2

    monkeypatch.undo()  # disk space freed
    resumed = train(make_cfg(work_dir), resume=True)
    reference = train(make_cfg(tmp_path / 'reference'))
    assert resumed.iter == 6 and last_checkpoint(work_dir).endswith('iter_6.pth')
    assert sorted(f for f in os.listdir(work_dir) if f.startswith('iter_')) == ['iter_6.pth']
    for name, param in reference.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], param, msg=name)


def test_mmengine_hook_loses_the_checkpoint(tmp_path, full_disk_at):
    """The fault above is real: MMEngine's CheckpointHook removes iter_2 first and
    leaves a truncated iter_4.pth under its final name."""
    work_dir = str(tmp_path / 'work_dir')
    full_disk_at('iter_4.pth')
    with pytest.raises(OSError):
        train(make_cfg(work_dir, hook='CheckpointHook'))
    files = os.listdir(work_dir)
    assert 'iter_2.pth' not in files and 'iter_4.pth' in files
    with pytest.raises(Exception):
        torch.load(osp.join(work_dir, 'iter_4.pth'))


def test_stale_part_files_are_removed_and_best_is_kept_once(tmp_path):
    work_dir = str(tmp_path / 'work_dir')
    os.makedirs(work_dir)
    stale = osp.join(work_dir, 'iter_2.pth.part')
    with open(stale, 'wb') as f:
        f.write(b'half a checkpoint')
    runner = train(make_cfg(work_dir))
    files = sorted(os.listdir(work_dir))
    assert not osp.exists(stale)
    best = [f for f in files if f.startswith('best_mse')]
    assert len(best) == 1, files
    assert runner.message_hub.get_info('best_ckpt') == osp.join(work_dir, best[0])
    assert [f for f in files if f.startswith('iter_')] == ['iter_6.pth']
    assert torch.load(osp.join(work_dir, best[0]))['meta']['iter'] in (2, 4, 6)


def test_full_disk_at_the_best_checkpoint_keeps_everything(tmp_path, full_disk_at):
    """The best checkpoint goes through the same atomic save: a failed one leaves the
    regular checkpoint, `last_checkpoint` and the hook's bookkeeping as they were."""
    work_dir = str(tmp_path / 'work_dir')
    full_disk_at('best_mse')
    cfg = make_cfg(work_dir)
    runner = Runner.from_cfg(Config(cfg))
    with pytest.raises(CheckpointSaveError, match='best_mse_iter_2.pth'):
        runner.train()
    files = sorted(os.listdir(work_dir))
    assert 'iter_2.pth' in files and not [f for f in files if f.startswith('best_')]
    assert not [f for f in files if f.endswith('.part')], files  # nor the scratch folder
    assert last_checkpoint(work_dir) == osp.join(work_dir, 'iter_2.pth')
    hook = next(h for h in runner.hooks if type(h).__name__ == 'AtomicCheckpointHook')
    assert hook.best_ckpt_path is None and hook.last_ckpt == osp.join(work_dir, 'iter_2.pth')
    assert 'best_score' not in runner.message_hub.runtime_info
    assert 'best_ckpt' not in runner.message_hub.runtime_info


def test_atomic_write_bytes_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = str(tmp_path / 'last_checkpoint')
    atomic_write_bytes(path, b'old')

    def failing_replace(src, dst):
        raise OSError(errno.EIO, 'I/O error')
    monkeypatch.setattr(os, 'replace', failing_replace)
    with pytest.raises(OSError, match='I/O error'):
        atomic_write_bytes(path, b'new')
    assert open(path, 'rb').read() == b'old'
    assert os.listdir(tmp_path) == ['last_checkpoint']
