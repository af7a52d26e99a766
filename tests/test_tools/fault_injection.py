# Copyright (c) cllip_mm contributors. All rights reserved.
"""Hooks that crash ``tools/train.py`` on purpose, driven by environment variables.

Configs import this module with ``custom_imports=dict(imports=['fault_injection'])``;
``tests/test_tools`` must then be on ``PYTHONPATH``. Nothing happens when the
variables are unset.
"""
import os
import signal
import time

from mmengine.dist import get_rank
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import Hook

from cllip_mm.registry import HOOKS

#: SIGKILL halfway through writing the checkpoint of this (1-based) iteration.
KILL_SAVING_ENV = 'CLLIP_TEST_SIGKILL_SAVING_ITER'
#: ``RANK:ITER:SIGNAL``: process RANK sends itself SIGNAL (KILL or STOP) after ITER.
RANK_FAULT_ENV = 'CLLIP_TEST_RANK_FAULT'
#: File where RankFaultHook writes the time of the fault (``time.time()``).
FAULT_STAMP_ENV = 'CLLIP_TEST_FAULT_STAMP'


@HOOKS.register_module(force=True)
class SigkillMidSaveHook(Hook):
    """When the runner is about to write the checkpoint of iteration
    ``$CLLIP_TEST_SIGKILL_SAVING_ITER``, make the file write stop halfway (the bytes
    written so far fsynced) and SIGKILL the process: a kill in the middle of
    ``torch.save``'s output, as hard as an out-of-memory kill."""

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        target = os.environ.get(KILL_SAVING_ENV)
        if target is None or checkpoint['meta'].get('iter') != int(target):
            return

        def half_put_then_die(backend, obj, filepath):
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
                f.flush()
                os.fsync(f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)

        LocalBackend.put = half_put_then_die


@HOOKS.register_module(force=True)
class RankFaultHook(Hook):
    """Process RANK sends itself SIGKILL (it dies) or SIGSTOP (it hangs) after
    iteration ITER, per ``$CLLIP_TEST_RANK_FAULT=RANK:ITER:KILL|STOP``, having written
    the time to ``$CLLIP_TEST_FAULT_STAMP``."""
    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        fault = os.environ.get(RANK_FAULT_ENV)
        if fault is None:
            return
        rank, after_iter, sig = fault.split(':')
        if get_rank() == int(rank) and runner.iter + 1 == int(after_iter):
            stamp = os.environ[FAULT_STAMP_ENV]
            with open(stamp + '.tmp', 'w') as f:
                f.write(repr(time.time()))
            os.replace(stamp + '.tmp', stamp)  # readers never see an empty file
            os.kill(os.getpid(), getattr(signal, f'SIG{sig}'))
