# Copyright (c) cllip_mm contributors. All rights reserved.
from .coco_region import CocoRegionDataset
from .karpathy_retrieval import KarpathyRetrievalDataset
from .region_text import BadRecordError, RegionTextDataset, iter_json_lines
from .region_text_stream import RegionTextShardStream
from .samplers import ResumableInfiniteSampler, ResumableSampleSizeSampler
from .transforms import *  # noqa: F401,F403
from .zero_shot_image import ZeroShotImageDataset

__all__ = [
    'RegionTextDataset', 'BadRecordError', 'iter_json_lines', 'CocoRegionDataset', 'KarpathyRetrievalDataset',
    'ZeroShotImageDataset',
    'ResumableInfiniteSampler', 'ResumableSampleSizeSampler', 'RegionTextShardStream'
]
