# Copyright (c) cllip_mm contributors. All rights reserved.
"""Skip the optimizer steps of NaN / Inf losses instead of corrupting the weights."""
import math
from typing import Any, Dict, Optional

import torch
import torch.distributed as torch_dist
from mmdet.engine.hooks import CheckInvalidLossHook
from mmengine.dist import get_world_size
from mmengine.optim import OptimWrapper, OptimWrapperDict

from cllip_mm.registry import HOOKS


class NonFiniteLossError(RuntimeError):
    """Too many consecutive training steps had a non-finite loss."""


def all_ranks_finite(loss: torch.Tensor) -> bool:
    """Whether ``loss`` is finite on every process (one tiny all-reduce when
    distributed, so that all processes skip the same steps: a process that skipped
    its backward alone would leave the others waiting in DDP's gradient all-reduce)."""
    finite = torch.isfinite(loss.detach()).all()
    if get_world_size() > 1:
        flag = finite.to(torch.float32).reshape(1)
        torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MIN)
        return bool(flag.item() > 0)
    return bool(finite)


@HOOKS.register_module()
class SkipNonFiniteLossHook(CheckInvalidLossHook):
    """mmdet's ``CheckInvalidLossHook``, but a NaN / Inf loss skips the step.

    mmdet's hook asserts after the optimizer step, when a NaN gradient has already
    reached the weights and the optimizer moments. This hook guards
    ``update_params`` of the runner's optim wrapper(s) (any ``OptimWrapper``
    subclass: AMP, bf16, gradient accumulation) at ``before_train``: when the total
    loss is not finite on any process, no process runs the backward pass or the
    optimizer step (with gradient accumulation, the window's other micro-batches are
    still applied). The iteration still counts (schedulers and data move on).

    After the iteration it logs a warning with the non-finite loss terms, counts the
    skip (``runtime_info['num_skipped_nonfinite_steps']`` in the message hub, saved
    in checkpoints) and, after ``max_consecutive`` skipped steps in a row, raises
    :class:`NonFiniteLossError`: the run has diverged.

    Args:
        max_consecutive (int): Consecutive skipped steps that stop training.
            Defaults to 10.
        interval (int): Kept for mmdet's signature; every step is checked.
    """
    priority = 'ABOVE_NORMAL'

    def __init__(self, max_consecutive: int = 10, interval: int = 1) -> None:
        super().__init__(interval=interval)
        if max_consecutive < 1:
            raise ValueError(f'max_consecutive must be >= 1, got {max_consecutive}')
        self.max_consecutive = max_consecutive
        self.num_skipped = 0
        self.num_consecutive = 0
        self._skipped_this_iter = False

    def before_train(self, runner) -> None:
        self.num_skipped = int(runner.message_hub.get_info('num_skipped_nonfinite_steps', 0))
        wrappers = runner.optim_wrapper
        wrappers = wrappers.values() if isinstance(wrappers, OptimWrapperDict) else [wrappers]
        for wrapper in wrappers:
            self._guard(wrapper)

    def _guard(self, wrapper: OptimWrapper) -> None:
        """Replace ``wrapper.update_params`` by a version that skips non-finite losses."""
        if getattr(wrapper, '_cllip_nonfinite_guard', False):
            return
        update_params = wrapper.update_params

        def guarded_update_params(loss: torch.Tensor,
                                  step_kwargs: Optional[Dict] = None,
                                  zero_kwargs: Optional[Dict] = None) -> None:
            if all_ranks_finite(loss):
                update_params(loss, step_kwargs=step_kwargs, zero_kwargs=zero_kwargs)
                return
            self._skipped_this_iter = True
            # No backward: the bad micro-batch adds nothing. Keep the accumulation
            # count, and at the end of a window apply what good micro-batches left.
            wrapper._inner_count += 1
            if wrapper.should_update():
                if _has_grads(wrapper):
                    wrapper.step(**(step_kwargs or {}))
                wrapper.zero_grad(**(zero_kwargs or {}))

        wrapper.update_params = guarded_update_params
        wrapper._cllip_nonfinite_guard = True

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        if not self._skipped_this_iter:
            self.num_consecutive = 0
            return
        self._skipped_this_iter = False
        self.num_skipped += 1
        self.num_consecutive += 1
        runner.message_hub.update_info('num_skipped_nonfinite_steps', self.num_skipped)
        bad = {k: v for k, v in _floats(outputs).items() if not math.isfinite(v)}
        runner.logger.warning(
            f'Iteration {runner.iter + 1}: non-finite loss {bad or "(total)"}; skipped '
            f'the optimizer step ({self.num_consecutive} in a row, {self.num_skipped} '
            'in total).')
        if self.num_consecutive >= self.max_consecutive:
            raise NonFiniteLossError(
                f'Training stopped at iteration {runner.iter + 1}: the loss was NaN or '
                f'Inf for {self.num_consecutive} steps in a row (SkipNonFiniteLossHook('
                f'max_consecutive={self.max_consecutive})); last values {bad}. The run '
                'has diverged: lower the learning rate, check the data, or resume from '
                'an earlier checkpoint.')


def _has_grads(wrapper: OptimWrapper) -> bool:
    return any(p.grad is not None for group in wrapper.optimizer.param_groups
               for p in group['params'])


def _floats(outputs: Optional[dict]) -> Dict[str, float]:
    """The scalar entries of the model's ``log_vars``, as floats."""
    values: Dict[str, float] = {}
    for key, value in (outputs or {}).items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            values[key] = float(value.detach())
        elif isinstance(value, (int, float)):
            values[key] = float(value)
    return values

