# Copyright (c) cllip_mm contributors. All rights reserved.
"""A toy regression task for runner-level tests (CPU, a few ms per iteration).

Configs import this module with ``custom_imports=dict(imports=['toy_model_helpers'])``;
``tests/test_utils`` must then be on ``sys.path`` (pytest puts it there for the
tests in this folder; subprocesses get it through ``PYTHONPATH``).
"""
import os
import os.path as osp
import signal
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from torch.utils.data import Dataset

from cllip_mm.registry import DATASETS, HOOKS, METRICS, MODELS

HELPERS_DIR = osp.dirname(osp.abspath(__file__))
# after this 1-based training iteration ToySigkillHook SIGKILLs its own process
SIGKILL_ENV = 'CLLIP_TEST_SIGKILL_AFTER_ITER'


@MODELS.register_module(force=True)
class ToyRegressor(BaseModel):
    """``targets ~ linear(inputs)``; ``inputs`` [B, in_dim], ``targets`` [B]."""

    def __init__(self, in_dim: int = 4):
        super().__init__()
        self.linear = nn.Linear(in_dim, 1)

    def forward(self, inputs, targets=None, mode='tensor'):
        preds = self.linear(inputs).squeeze(-1)
        if mode == 'loss':
            return dict(loss=F.mse_loss(preds, targets))
        if mode == 'predict':
            return [dict(pred=p, target=t) for p, t in zip(preds, targets)]
        return preds


@DATASETS.register_module(force=True)
class ToyRegressionDataset(Dataset):
    """``length`` fixed random samples ``dict(inputs=[in_dim], targets=[])``."""

    def __init__(self, length: int = 32, in_dim: int = 4, seed: int = 0):
        rng = np.random.RandomState(seed)
        self.inputs = rng.randn(length, in_dim).astype(np.float32)
        weight = rng.randn(in_dim).astype(np.float32)
        self.targets = self.inputs @ weight + 0.1 * rng.randn(length).astype(np.float32)
        self.metainfo = dict(task='toy regression')

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, idx):
        return dict(inputs=torch.from_numpy(self.inputs[idx]),
                    targets=torch.tensor(self.targets[idx]))


@METRICS.register_module(force=True)
class ToyMSEMetric(BaseMetric):
    """Mean squared error, returned as a numpy float64 like most metrics do."""

    def process(self, data_batch, data_samples):
        self.results.extend(
            float((s['pred'] - s['target'])**2) for s in data_samples)

    def compute_metrics(self, results):
        return dict(mse=np.float64(np.mean(results)))


@HOOKS.register_module(force=True)
class ToyRecordStartIterHook(Hook):
    """Remembers the iteration training (re)started from in ``start_iter``."""

    def __init__(self):
        self.start_iter: Optional[int] = None

    def before_train(self, runner) -> None:
        self.start_iter = runner.iter


@HOOKS.register_module(force=True)
class ToySigkillHook(Hook):
    """SIGKILLs the training process after iteration ``$CLLIP_TEST_SIGKILL_AFTER_ITER``.

    Runs last (after ``CheckpointHook``), so checkpoints of that iteration exist;
    nothing is flushed or closed: a crash as hard as an out-of-memory kill.
    """
    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        kill_after = os.environ.get(SIGKILL_ENV)
        if kill_after is not None and runner.iter + 1 == int(kill_after):
            os.kill(os.getpid(), signal.SIGKILL)


def toy_cfg(work_dir: str,
            max_iters: int = 6,
            interval: int = 2,
            stop_at: Optional[int] = None,
            batch_size: int = 4) -> dict:
    """A complete runner config for the toy task.

    Checkpoints (and validation with ``save_best``) every ``interval`` iterations;
    AdamW with warm-up + cosine schedulers over ``max_iters`` so that optimizer and
    scheduler states matter. ``stop_at`` ends the training loop early (the schedule
    is unchanged), as a crash at that iteration would. ``batch_size`` is per process.
    """
    dataloader = dict(
        batch_size=batch_size,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=True),
        collate_fn=dict(type='default_collate'),
        dataset=dict(type='ToyRegressionDataset', length=32))
    return dict(
        default_scope='cllip_mm',
        custom_imports=dict(imports=['toy_model_helpers'], allow_failed_imports=False),
        work_dir=work_dir,
        model=dict(type='ToyRegressor'),
        train_dataloader=dataloader,
        val_dataloader=dict(dataloader, sampler=dict(type='DefaultSampler', shuffle=False),
                            dataset=dict(type='ToyRegressionDataset', length=8, seed=1)),
        val_evaluator=dict(type='ToyMSEMetric'),
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=0.05)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3),
            dict(type='CosineAnnealingLR', by_epoch=False, begin=3, end=max_iters,
                 eta_min=1e-3),
        ],
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=stop_at or max_iters,
                       val_interval=interval),
        val_cfg=dict(type='ValLoop'),
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=interval,
                            save_best='mse', rule='less'),
        ),
        custom_hooks=[dict(type='ToyRecordStartIterHook'), dict(type='ToySigkillHook')],
        log_processor=dict(by_epoch=False),
        randomness=dict(seed=0),
        log_level='WARNING',
    )
