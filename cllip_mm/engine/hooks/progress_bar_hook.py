# Copyright (c) cllip_mm contributors. All rights reserved.
"""A progress bar over the test (or validation) batches."""
import sys
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.utils import ProgressBar

from cllip_mm.registry import HOOKS


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """Draw mmengine's ``ProgressBar`` over the batches of test / validation epochs
    (on the main process, whose share of the batches it counts), on stderr.

    The bar's line ends as soon as its last batch is counted, before the epoch-end hooks
    run: ``LoggerHook`` (a higher priority) logs the epoch's metrics in
    ``after_*_epoch``, on a line of its own rather than glued to the bar's.
    """
    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._bar: Optional[ProgressBar] = None

    def _start(self, runner, loader) -> None:
        self._bar = ProgressBar(len(loader), file=sys.stderr) if is_main_process() else None

    def _step(self) -> None:
        if self._bar is not None:
            self._bar.update()
            if self._bar.completed >= self._bar.task_num:
                self._end()

    def _end(self) -> None:
        if self._bar is not None:
            self._bar.file.write('\n')
            self._bar = None

    def before_test_epoch(self, runner) -> None:
        self._start(runner, runner.test_dataloader)

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._step()

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._end()

    def before_val_epoch(self, runner) -> None:
        self._start(runner, runner.val_dataloader)

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._step()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._end()
