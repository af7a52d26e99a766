# Copyright (c) cllip_mm contributors. All rights reserved.
"""tools/train.py: a run SIGKILLed mid-training continues with ``--resume``."""
import importlib.util
import itertools
import os
import os.path as osp
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from toy_model_helpers import HELPERS_DIR, SIGKILL_ENV, toy_cfg

import cllip_mm  # noqa: F401  allow-lists MMEngine's types for torch.load

REPO = osp.dirname(osp.dirname(HELPERS_DIR))
TRAIN = osp.join(REPO, 'tools', 'train.py')
_ids = itertools.count()


def tool_env(**extra):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO, HELPERS_DIR, env.get('PYTHONPATH')) if p)
    env.pop(SIGKILL_ENV, None)
    env.update(extra)
    return env


def run_train(*args, kill_after_iter=None, cwd):
    env = tool_env() if kill_after_iter is None else tool_env(
        **{SIGKILL_ENV: str(kill_after_iter)})
    return subprocess.run([sys.executable, TRAIN, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def train_reference(work_dir, **kwargs):
    """Uninterrupted single-process run of the toy config, in this process."""
    cfg = dict(toy_cfg(str(work_dir), **kwargs), experiment_name=f'reference_{next(_ids)}')
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    return runner


def describe(proc):
    return f'rc={proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}'


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    max_iters, interval = 10, 3
    cfg_file = str(tmp_path / 'toy_config.py')
    Config(toy_cfg('unused', max_iters=max_iters, interval=interval)).dump(cfg_file)
    work_dir = str(tmp_path / 'work_dir')

    # 1. killed right after iteration 7; the last checkpoint is iter_6.pth
    killed = run_train(cfg_file, '--work-dir', work_dir, kill_after_iter=7, cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL, describe(killed)
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert osp.basename(f.read().strip()) == 'iter_6.pth'
    assert not osp.exists(osp.join(work_dir, 'iter_9.pth'))

    # 2. the same command with --resume continues from iteration 6 to the end
    resumed = run_train(cfg_file, '--work-dir', work_dir, '--resume', cwd=tmp_path)
    assert resumed.returncode == 0, describe(resumed)
    assert 'Advance dataloader 6 steps' in resumed.stdout + resumed.stderr, describe(resumed)

    final = torch.load(osp.join(work_dir, f'iter_{max_iters}.pth'), map_location='cpu')
    assert final['meta']['iter'] == max_iters
    losses = final['message_hub']['log_scalars']['train/loss'].data[0]
    assert len(losses) == max_iters  # 6 from before the kill + 4 after resuming

    # 3. ... and ends where an uninterrupted run ends
    reference = train_reference(tmp_path / 'reference', max_iters=max_iters,
                                interval=interval)
    np.testing.assert_allclose(
        losses, reference.message_hub.get_scalar('train/loss').data[0], rtol=1e-6)
    for name, param in reference.model.state_dict().items():
        torch.testing.assert_close(final['state_dict'][name], param, msg=name)


@pytest.mark.slow  # over ~30 s on 2 idle cores: out of the fast subset
def test_dist_train_on_cpu_matches_single_process(tmp_path):
    """tools/dist_train.sh, 2 processes x 2 samples == 1 process x 4 samples."""
    max_iters = 4
    cfg_file = str(tmp_path / 'toy_config.py')
    Config(toy_cfg('unused', max_iters=max_iters, interval=max_iters,
                   batch_size=2)).dump(cfg_file)
    work_dir = str(tmp_path / 'work_dir')
    proc = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), cfg_file, '2',
         '--work-dir', work_dir],
        # PORT=0: torchrun --standalone binds a free port itself (no free-port race)
        cwd=tmp_path, env=tool_env(PORT='0', PYTHON=sys.executable),
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, describe(proc)
    final = torch.load(osp.join(work_dir, f'iter_{max_iters}.pth'), map_location='cpu')

    reference = train_reference(tmp_path / 'reference', max_iters=max_iters,
                                interval=max_iters, batch_size=4)
    for name, param in reference.model.state_dict().items():
        torch.testing.assert_close(final['state_dict'][name], param, msg=name)


def load_train_tool():
    spec = importlib.util.spec_from_file_location('cllip_mm_tools_train', TRAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_amp_flag_picks_a_wrapper_for_the_device():
    enable_amp = load_train_tool().enable_amp
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD'))))
    enable_amp(cfg)
    if torch.cuda.is_available():
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        assert cfg.optim_wrapper.loss_scale == 'dynamic'
    else:
        assert cfg.optim_wrapper.type == 'BF16AmpOptimWrapper'
    already = Config(dict(optim_wrapper=dict(type='AmpOptimWrapper', loss_scale=512.)))
    enable_amp(already)
    assert already.optim_wrapper == dict(type='AmpOptimWrapper', loss_scale=512.)
    with pytest.raises(ValueError, match='ApexOptimWrapper'):
        enable_amp(Config(dict(optim_wrapper=dict(type='ApexOptimWrapper'))))
