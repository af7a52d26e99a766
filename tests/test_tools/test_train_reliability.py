# Copyright (c) cllip_mm contributors. All rights reserved.
"""tools/train.py under hard faults: a SIGKILL in the middle of writing a checkpoint, a
SIGKILL at a random iteration, and a process of a 2-process (gloo) run that dies or
hangs. Each run is a few iterations of the tiny CLOC (or the toy) config."""
import os
import os.path as osp
import random
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from dist_utils import rendezvous_env
from mmengine.config import Config
from mmengine.runner import Runner

import cllip_mm  # noqa: F401  allow-lists MMEngine's types for torch.load

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN = osp.join(REPO, 'tools', 'train.py')
HELPERS = [osp.join(REPO, 'tests', 'test_tools'), osp.join(REPO, 'tests', 'test_utils')]
MAX_ITERS = 6


def env_for(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith('CLLIP_TEST_')}
    env.update(PYTHONPATH=os.pathsep.join([REPO, *HELPERS]), OMP_NUM_THREADS='1', **extra)
    return env


def describe(proc):
    return f'rc={proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}'


def deterministic(cfg):
    """The tiny CLOC config without random augmentation (resizing instead of random
    crops, no flips; SampleRegions keeps all of <= 5 regions): a resumed run must
    then end with the weights of an uninterrupted one."""
    pipeline = []
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] == 'RandomResizedCropWithRegions':
            step = dict(type='Resize', scale=(32, 32), keep_ratio=False)
        if step['type'] != 'RandomFlipWithPhrases':
            pipeline.append(step)
    cfg.train_dataloader.dataset.pipeline = pipeline
    cfg.train_cfg.update(max_iters=MAX_ITERS, val_interval=MAX_ITERS)
    # one kept checkpoint: MMEngine's hook would delete it before writing the next
    cfg.default_hooks.checkpoint.update(type='AtomicCheckpointHook', interval=2,
                                        max_keep_ckpts=1)
    return cfg


@pytest.fixture(scope='module')
def reference_weights(tiny_region_set, tiny_cloc_cfg_factory, tmp_path_factory):
    """Final weights of an uninterrupted run, in this process (1 thread, as the tools)."""
    cfg = deterministic(tiny_cloc_cfg_factory(tiny_region_set, str(tmp_path_factory.mktemp('ref'))))
    cfg.experiment_name = 'reliability_reference'
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runner = Runner.from_cfg(cfg)
        runner.train()
    finally:
        torch.set_num_threads(threads)
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


@pytest.fixture
def tool_config(make_tiny_cloc_cfg, tmp_path):
    cfg = deterministic(make_tiny_cloc_cfg())
    cfg.custom_imports = dict(imports=['fault_injection', 'toy_model_helpers'],
                              allow_failed_imports=False)
    cfg.custom_hooks = [dict(type='SkipNonFiniteLossHook'), dict(type='SigkillMidSaveHook'),
                        dict(type='ToySigkillHook')]
    path = str(tmp_path / 'tiny_cloc.py')
    cfg.dump(path)
    return path, cfg.work_dir


def run_train(config, work_dir, *args, **env):
    return subprocess.run([sys.executable, TRAIN, config, '--work-dir', work_dir, *args],
                          env=env_for(**env), capture_output=True, text=True, timeout=300)


def last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def assert_same_weights(work_dir, reference):
    final = torch.load(osp.join(work_dir, f'iter_{MAX_ITERS}.pth'), map_location='cpu')
    assert final['meta']['iter'] == MAX_ITERS
    for name, param in reference.items():
        torch.testing.assert_close(final['state_dict'][name], param, msg=name)


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_sigkill_while_writing_a_checkpoint_then_resume(tool_config, reference_weights):
    config, work_dir = tool_config
    killed = run_train(config, work_dir, CLLIP_TEST_SIGKILL_SAVING_ITER='4')
    assert killed.returncode == -signal.SIGKILL, describe(killed)
    files = sorted(os.listdir(work_dir))
    # half of iter_4 was written, never under its final name; iter_2 was kept
    assert 'iter_4.pth.part' in files and 'iter_4.pth' not in files, files
    assert 'iter_2.pth' in files and last_checkpoint(work_dir).endswith('iter_2.pth')

    resumed = run_train(config, work_dir, '--resume')
    assert resumed.returncode == 0, describe(resumed)
    assert 'Advance dataloader 2 steps' in resumed.stdout + resumed.stderr, describe(resumed)
    files = sorted(os.listdir(work_dir))
    assert not [f for f in files if f.endswith('.part')], files
    assert [f for f in files if f.startswith('iter_')] == [f'iter_{MAX_ITERS}.pth']
    assert_same_weights(work_dir, reference_weights)


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_sigkill_at_a_random_iteration_then_resume(tool_config, reference_weights):
    config, work_dir = tool_config
    kill_after = random.Random(os.urandom(8)).randint(1, MAX_ITERS - 1)
    killed = run_train(config, work_dir, CLLIP_TEST_SIGKILL_AFTER_ITER=str(kill_after))
    assert killed.returncode == -signal.SIGKILL, f'kill after {kill_after}: ' + describe(killed)
    resumed = run_train(config, work_dir, '--resume')
    assert resumed.returncode == 0, f'kill after {kill_after}: ' + describe(resumed)
    assert_same_weights(work_dir, reference_weights)


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
@pytest.mark.parametrize('fault,timeout_s', [('KILL', 60), ('STOP', 15)])
def test_one_process_dies_or_hangs_the_other_exits_in_bounded_time(tmp_path, fault,
                                                                   timeout_s):
    """2 gloo processes (no torchrun, so nothing else stops the survivor): rank 1 dies
    (SIGKILL) or hangs (SIGSTOP) after iteration 2; rank 0 exits with an explanation,
    at once for a death, within the process-group timeout for a hang."""
    sys.path.insert(0, HELPERS[1])
    try:
        from toy_model_helpers import toy_cfg
    finally:
        sys.path.remove(HELPERS[1])
    cfg = toy_cfg(str(tmp_path / 'work_dir'), max_iters=50, interval=50, batch_size=2)
    cfg.update(custom_imports=dict(imports=['fault_injection', 'toy_model_helpers']),
               custom_hooks=[dict(type='RankFaultHook')],
               env_cfg=dict(dist_cfg=dict(backend='gloo', timeout=timeout_s)))
    config = str(tmp_path / 'toy.py')
    Config(cfg).dump(config)
    stamp = str(tmp_path / 'fault_time')
    # the store of env:// is served by this process (no free-port race)
    with rendezvous_env(2) as dist_env:
        procs = []
        for rank in (0, 1):
            env = env_for(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2',
                          **dist_env,
                          CLLIP_TEST_RANK_FAULT=f'1:2:{fault}', CLLIP_TEST_FAULT_STAMP=stamp)
            # files, not pipes: a full pipe would block the process like a hang
            with open(tmp_path / f'out{rank}', 'w') as out, open(tmp_path / f'err{rank}', 'w') as err:
                procs.append(subprocess.Popen(
                    [sys.executable, TRAIN, config, '--launcher', 'pytorch'], env=env,
                    stdout=out, stderr=err))
        bound = 30 if fault == 'KILL' else timeout_s + 30  # seconds from the fault to the exit
        try:
            # No limit on the start (minutes on a loaded machine); after the fault, rank 0
            # must exit within ``bound``.
            deadline = time.time() + 1800
            while procs[0].poll() is None and time.time() < deadline:
                if osp.exists(stamp) and time.time() - _read_time(stamp) > bound + 5:
                    break
                time.sleep(0.5)
            exited = time.time()
            still_running = procs[0].poll() is None
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
    out, err = (open(tmp_path / name).read() for name in ('out0', 'err0'))
    assert not still_running, f'rank 0 still running {bound} s after the fault\n{err[-3000:]}'
    assert procs[0].returncode == 1, f'rc={procs[0].returncode}\n{out[-2000:]}\n{err[-3000:]}'
    assert '[rank 0/2] tools/train.py stopped' in err, err[-3000:]
    assert 'another process probably died' in err and f'timeout={timeout_s:g} s' in err
    cause = r'Connection (closed|reset) by peer' if fault == 'KILL' else r'Timed out'
    assert re.search(cause, err), err[-3000:]
    # bounded: from the fault to rank 0's exit (a death is seen at the next collective)
    after_fault = exited - _read_time(stamp)
    assert after_fault < bound, after_fault


def _read_time(path):
    with open(path) as f:
        return float(f.read())
