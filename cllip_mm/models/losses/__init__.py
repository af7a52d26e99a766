# Copyright (c) cllip_mm contributors. All rights reserved.
from .clip_loss import ClipContrastiveLoss
from .grounding_loss import GroundingLoss
from .region_text_loss import RegionTextContrastiveLoss, phrase_keys
from .siglip_loss import SigLipLoss
from .utils import gather_variable, gather_variable_with_grad, gather_with_grad, is_distributed

__all__ = [
    'ClipContrastiveLoss', 'SigLipLoss', 'RegionTextContrastiveLoss', 'GroundingLoss',
    'phrase_keys', 'gather_with_grad', 'gather_variable_with_grad', 'gather_variable',
    'is_distributed'
]
