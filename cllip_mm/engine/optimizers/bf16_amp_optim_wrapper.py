# Copyright (c) cllip_mm contributors. All rights reserved.
from contextlib import contextmanager

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper
from mmengine.runner.amp import autocast

from cllip_mm.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class BF16AmpOptimWrapper(OptimWrapper):
    """Mixed precision in bfloat16, without loss scaling; works on CPU.

    MMEngine's ``AmpOptimWrapper`` refuses to build without an accelerator (it
    asserts CUDA/NPU/MLU/MUSA) and drives a ``GradScaler``. bfloat16 keeps float32's
    exponent range, so gradients need no loss scaling, and ``torch.autocast``
    supports it on CPU as well as on bf16-capable GPUs. The forward pass (data
    preprocessor included) runs under ``autocast(dtype=torch.bfloat16)`` on the
    current device; parameters, gradients and optimizer state stay float32.

    ``tools/train.py --amp`` picks this wrapper when CUDA is not available.

    Args:
        **kwargs: Arguments of :class:`mmengine.optim.OptimWrapper`.
    """

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Gradient-accumulation context of ``OptimWrapper`` plus bf16 autocast."""
        with super().optim_context(model), autocast(dtype=torch.bfloat16):
            yield
