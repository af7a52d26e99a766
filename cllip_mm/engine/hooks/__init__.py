# Copyright (c) cllip_mm contributors. All rights reserved.
from .progress_bar_hook import ProgressBarHook
from .sampler_state_hook import SamplerStateHook

__all__ = ['ProgressBarHook', 'SamplerStateHook']
