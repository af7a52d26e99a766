# Copyright (c) cllip_mm contributors. All rights reserved.
from .sampler_state_hook import SamplerStateHook

__all__ = ['SamplerStateHook']
