# Copyright (c) cllip_mm contributors. All rights reserved.
"""SkipNonFiniteLossHook: a NaN / Inf loss leaves weights and optimizer state untouched,
is counted and logged; N in a row stop training; all processes skip together."""
import itertools
import json
import os.path as osp

import pytest
import torch
import torch.nn as nn
from dist_utils import run_in_processes
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from toy_model_helpers import ToyRegressor, toy_cfg

import cllip_mm  # noqa: F401
from cllip_mm.engine.hooks import NonFiniteLossError, SkipNonFiniteLossHook
from cllip_mm.registry import HOOKS, MODELS

_ids = itertools.count()


@MODELS.register_module(force=True)
class NaNAtItersRegressor(ToyRegressor):
    """ToyRegressor whose loss is ``bad_value`` at the (1-based) iterations ``bad_iters``."""

    def __init__(self, bad_iters=(), bad_value=float('nan'), **kwargs):
        super().__init__(**kwargs)
        self.bad_iters = set(bad_iters)
        self.bad_value = bad_value
        self.calls = 0

    def forward(self, inputs, targets=None, mode='tensor'):
        out = super().forward(inputs, targets, mode)
        if mode == 'loss':
            self.calls += 1
            if self.calls in self.bad_iters:
                out = dict(loss=out['loss'] * self.bad_value)
        return out


@HOOKS.register_module(force=True)
class RecordWeightsHook(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.weights = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.weights.append({k: v.clone() for k, v in runner.model.state_dict().items()})


def train(work_dir, bad_iters, skip=True, max_iters=6, max_consecutive=3,
          bad_value=float('nan')):
    cfg = toy_cfg(str(work_dir), max_iters=max_iters, interval=max_iters)
    cfg['model'] = dict(type='NaNAtItersRegressor', bad_iters=bad_iters, bad_value=bad_value)
    cfg['custom_hooks'] = [dict(type='RecordWeightsHook')] + (
        [dict(type='SkipNonFiniteLossHook', max_consecutive=max_consecutive)] if skip else [])
    cfg['default_hooks']['checkpoint'].update(save_best=None)
    cfg['experiment_name'] = f'nonfinite_{next(_ids)}'
    cfg['log_level'] = 'INFO'
    runner = Runner.from_cfg(Config(cfg))
    try:
        runner.train()
    finally:
        recorder = next(h for h in runner.hooks if isinstance(h, RecordWeightsHook))
    return runner, recorder.weights


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize('bad_value', [float('nan'), float('inf')])
def test_non_finite_steps_are_skipped_counted_and_logged(tmp_path, bad_value):
    runner, weights = train(tmp_path, bad_iters=(3, 5), bad_value=bad_value)
    assert len(weights) == 6
    assert same(weights[2], weights[1]) and same(weights[4], weights[3])  # iters 3, 5
    assert not same(weights[1], weights[0]) and not same(weights[3], weights[2])
    assert all(torch.isfinite(v).all() for v in weights[-1].values())
    # two of six steps never reached the optimizer
    state = runner.optim_wrapper.optimizer.state_dict()['state']
    assert all(int(s['step']) == 4 for s in state.values())
    assert runner.message_hub.get_info('num_skipped_nonfinite_steps') == 2
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert 'Iteration 3: non-finite loss' in log and 'Iteration 5: non-finite loss' in log
    assert '(1 in a row, 2 in total)' in log


def test_without_the_hook_the_weights_are_lost(tmp_path):
    _, weights = train(tmp_path, bad_iters=(3, ), skip=False)
    assert not all(torch.isfinite(v).all() for v in weights[-1].values())


def test_consecutive_non_finite_losses_stop_training(tmp_path):
    with pytest.raises(NonFiniteLossError,
                       match=r'iteration 4: the loss was NaN or Inf for 3 steps in a row'):
        train(tmp_path, bad_iters=range(2, 10), max_iters=8, max_consecutive=3)


def test_invalid_max_consecutive():
    with pytest.raises(ValueError, match='max_consecutive'):
        SkipNonFiniteLossHook(max_consecutive=0)


class _Runner:
    """What SkipNonFiniteLossHook.before_train reads from a runner."""

    def __init__(self, optim_wrapper):
        from mmengine.logging import MessageHub
        self.optim_wrapper = optim_wrapper
        self.message_hub = MessageHub.get_instance(f'nonfinite_dist_{next(_ids)}')


def _worker(rank, world_size, out_file):
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(nn.Linear(3, 1))
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    SkipNonFiniteLossHook().before_train(_Runner(wrapper))
    before = model.module.weight.detach().clone()
    x = torch.ones(2, 3) * (rank + 1)
    loss = model(x).sum()
    if rank == 1:
        loss = loss * float('nan')  # only rank 1 sees a NaN
    wrapper.update_params(loss)  # both must skip, or rank 0 hangs in all-reduce
    skipped = torch.equal(model.module.weight.detach(), before)
    wrapper.update_params(model(x).sum())  # a finite step then runs everywhere
    weights = model.module.weight.detach().flatten().tolist()
    with open(out_file.format(rank), 'w') as f:
        json.dump(dict(skipped=skipped, weights=weights), f)


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_all_processes_skip_together(tmp_path):
    out_file = str(tmp_path / 'rank{}.json')
    # a rank that does not skip waits in DDP's all-reduce: the collective timeout
    # (dist_utils) turns that into an error instead of a hang
    run_in_processes(_worker, args=(out_file, ), tmp_dir=tmp_path, collective_timeout=30)
    results = [json.load(open(out_file.format(r))) for r in range(2)]
    assert results[0]['skipped'] and results[1]['skipped']
    assert results[0]['weights'] == results[1]['weights']
