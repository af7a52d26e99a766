# Copyright (c) cllip_mm contributors. All rights reserved.
"""A hook that appends the sample indices of every training batch to a file."""
import json
import os

from mmengine.hooks import Hook

from cllip_mm.registry import HOOKS

LOG_ENV = 'CLLIP_TEST_SAMPLE_LOG'


@HOOKS.register_module(force=True)
class SampleIdsLogHook(Hook):
    """After each iteration, appends ``{"iter": i, "ids": [...]}`` (1-based ``i``,
    ``sample_idx`` of the batch) to ``$CLLIP_TEST_SAMPLE_LOG`` and syncs it."""

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        ids = [s.metainfo['sample_idx'] for s in data_batch['data_samples']]
        with open(os.environ[LOG_ENV], 'a') as f:
            f.write(json.dumps(dict(iter=runner.iter + 1, ids=ids)) + '\n')
            f.flush()
            os.fsync(f.fileno())


CRASH_ENV = 'CLLIP_TEST_CRASH_AFTER_ITER'


@HOOKS.register_module(force=True)
class CrashAfterIterHook(Hook):
    """Raises after 1-based iteration ``$CLLIP_TEST_CRASH_AFTER_ITER`` (after the
    checkpoint hook), a crash that leaves only the checkpoints behind."""
    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        crash_after = os.environ.get(CRASH_ENV)
        if crash_after is not None and runner.iter + 1 == int(crash_after):
            raise RuntimeError(f'crash after iteration {crash_after}')
