# Copyright (c) cllip_mm contributors. All rights reserved.
"""A tiny CLOC crashed after iteration 5 and resumed from its iteration-4 checkpoint
ends with the losses and parameters of an uninterrupted run (equality, not only
continuity): model, optimizer, scheduler, logit scales and data order all come back.

The training pipeline is made deterministic (resize, no random crop / flip / region
sampling): random augmentations are not replayed on resume (see
:class:`cllip_mm.engine.ResumableIterBasedTrainLoop`), so with them only the data
order could be compared. The crash is an exception (``CrashAfterIterHook``), so that
all runs share one process; a real SIGKILL of tools/train.py is tested in
tests/test_tools/test_train_cloc_resume.py."""
import copy

import pytest
import sample_log_helpers  # noqa: F401 (registers CrashAfterIterHook)
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from cllip_mm.registry import HOOKS

MAX_ITERS, CRASH_AFTER, CHECKPOINT = 6, 5, 4


@HOOKS.register_module(force=True)
class RecordLossesAndParamsHook(Hook):
    """Keeps the logged losses of each (1-based) iteration and the final parameters."""
    priority = 'LOWEST'

    def __init__(self):
        self.losses, self.params = {}, None

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses[runner.iter + 1] = {k: float(v.detach()) for k, v in outputs.items()
                                        if k.startswith('loss')}

    def after_train(self, runner):
        self.params = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


def run(cfg, tmp_path, monkeypatch, name, work_dir, crash=False, resume=False):
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = str(tmp_path / work_dir)
    cfg.experiment_name = f'resume_equality_{name}'
    cfg.visualizer.name = cfg.experiment_name  # a visualizer of its own too
    cfg.resume = resume
    if crash:
        monkeypatch.setenv(sample_log_helpers.CRASH_ENV, str(CRASH_AFTER))
    else:
        monkeypatch.delenv(sample_log_helpers.CRASH_ENV, raising=False)
    runner = Runner.from_cfg(cfg)
    if crash:
        with pytest.raises(RuntimeError, match='crash after iteration'):
            runner.train()
    else:
        runner.train()
    return next(h for h in runner.hooks if isinstance(h, RecordLossesAndParamsHook))


@pytest.mark.slow  # over ~30 s on 2 idle cores: out of the fast subset
@pytest.mark.parametrize('loop', ['IterBasedTrainLoop', 'ResumableIterBasedTrainLoop'])
def test_resumed_run_equals_uninterrupted_run(make_tiny_cloc_cfg, tmp_path, monkeypatch, loop):
    cfg = make_tiny_cloc_cfg(max_iters=MAX_ITERS)
    cfg.train_cfg.type = loop  # the demo's replaying loop, and the O(1) seeking one
    if loop == 'ResumableIterBasedTrainLoop':
        cfg.train_dataloader.sampler = dict(type='ResumableInfiniteSampler', shuffle=True)
    cfg.train_dataloader.dataset.pipeline = copy.deepcopy(cfg.val_dataloader.dataset.pipeline)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    # the default param_scheduler of tiny_cloc_cfg ends at iteration 2: make the LR
    # change at every iteration, so that the scheduler's state matters after resume
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                                end=MAX_ITERS)]
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='RecordLossesAndParamsHook'), dict(type='CrashAfterIterHook')]

    full = run(cfg, tmp_path, monkeypatch, f'full_{loop}', 'full')
    crashed = run(cfg, tmp_path, monkeypatch, f'crashed_{loop}', 'run', crash=True)
    resumed = run(cfg, tmp_path, monkeypatch, f'resumed_{loop}', 'run', resume=True)

    assert sorted(full.losses) == list(range(1, MAX_ITERS + 1))
    assert sorted(crashed.losses) == list(range(1, CRASH_AFTER + 1))
    assert sorted(resumed.losses) == list(range(CHECKPOINT + 1, MAX_ITERS + 1))
    assert set(full.losses[1]) == {'loss', 'loss_clip', 'loss_region', 'loss_ground',
                                   'loss_ground_token', 'loss_ground_refine'}
    for i in range(1, CRASH_AFTER + 1):
        assert crashed.losses[i] == pytest.approx(full.losses[i], rel=1e-6), i
    for i in range(CHECKPOINT + 1, MAX_ITERS + 1):
        assert resumed.losses[i] == pytest.approx(full.losses[i], rel=1e-5), i
    assert set(resumed.params) == set(full.params)
    for name, value in full.params.items():
        torch.testing.assert_close(resumed.params[name], value, rtol=1e-5, atol=1e-6,
                                   msg=lambda m, n=name: f'{n}: {m}')
    # the comparison is not vacuous: training moved the parameters after iteration 4
    assert any(not torch.equal(crashed_value, full.params[k])
               for k, crashed_value in crashed_params(tmp_path).items())


def crashed_params(tmp_path):
    """The parameters of the iteration-4 checkpoint the resumed run started from."""
    checkpoint = torch.load(str(tmp_path / 'run' / f'iter_{CHECKPOINT}.pth'),
                            map_location='cpu', weights_only=False)
    return checkpoint['state_dict']
