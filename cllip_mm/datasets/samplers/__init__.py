# Copyright (c) cllip_mm contributors. All rights reserved.
from .resumable_infinite_sampler import ResumableInfiniteSampler
from .resumable_sample_size_sampler import ResumableSampleSizeSampler, counts_from_weights

__all__ = ['ResumableInfiniteSampler', 'ResumableSampleSizeSampler', 'counts_from_weights']
