# Copyright (c) cllip_mm contributors. All rights reserved.
from .atomic_checkpoint_hook import AtomicCheckpointHook, CheckpointSaveError, atomic_write_bytes
from .non_finite_loss_hook import NonFiniteLossError, SkipNonFiniteLossHook, all_ranks_finite
from .progress_bar_hook import ProgressBarHook
from .sampler_state_hook import SamplerStateHook
from .weights_meta_hook import WeightsMetaHook

__all__ = [
    'AtomicCheckpointHook', 'CheckpointSaveError', 'atomic_write_bytes',
    'NonFiniteLossError', 'SkipNonFiniteLossHook', 'all_ranks_finite', 'ProgressBarHook',
    'SamplerStateHook', 'WeightsMetaHook'
]
