# Copyright (c) cllip_mm contributors. All rights reserved.
from .resumable_infinite_sampler import ResumableInfiniteSampler

__all__ = ['ResumableInfiniteSampler']
