# Copyright (c) cllip_mm contributors. All rights reserved.
from .hf_model import HFCloc, cloc_from_hf_dir
from .image_inputs import check_boxes, resolve_image_path, to_bgr_hwc
from .region_inferencer import RegionInferencer

__all__ = ['RegionInferencer', 'to_bgr_hwc', 'resolve_image_path', 'check_boxes',
           'cloc_from_hf_dir', 'HFCloc']
