# Copyright (c) cllip_mm contributors. All rights reserved.
from .formatting import PackRegionTextInputs
from .loading import BadImageError, LoadImageFromFileChecked
from .resize_with_pad import ResizeWithPad, resize_with_pad_geometry
from .transforms import (
                         RandomFlipWithPhrases,
                         RandomResizedCropWithRegions,
                         RandomZoomOutWithRegions,
                         SampleRegions,
                         select_regions,
                         swap_left_right,
)

__all__ = [
    'BadImageError', 'LoadImageFromFileChecked', 'RandomResizedCropWithRegions', 'RandomZoomOutWithRegions',
    'RandomFlipWithPhrases', 'ResizeWithPad', 'resize_with_pad_geometry',
    'SampleRegions', 'PackRegionTextInputs', 'select_regions', 'swap_left_right'
]
