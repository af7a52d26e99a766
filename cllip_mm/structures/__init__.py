from .bbox import denormalize_boxes, normalize_boxes, pad_boxes, padding_mask
from .region_text_data_sample import RegionTextDataSample, SampleList

__all__ = [
    'RegionTextDataSample', 'SampleList', 'normalize_boxes', 'denormalize_boxes', 'pad_boxes',
    'padding_mask'
]
