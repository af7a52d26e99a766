# Copyright (c) cllip_mm contributors. All rights reserved.
from .region_text import BadRecordError, RegionTextDataset
from .region_text_stream import RegionTextShardStream
from .samplers import ResumableInfiniteSampler
from .transforms import *  # noqa: F401,F403

__all__ = [
    'RegionTextDataset', 'BadRecordError', 'ResumableInfiniteSampler', 'RegionTextShardStream'
]
