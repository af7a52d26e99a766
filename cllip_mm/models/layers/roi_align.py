# Copyright (c) cllip_mm contributors. All rights reserved.
"""RoIAlign with the memory-layout contract made explicit.

``mmcv.ops.roi_align`` (CPU and CUDA kernels) reads its input's storage as if it were
contiguous NCHW and does not check: a transposed view or a channels-last tensor gives
values from the wrong places, silently. Every RoIAlign of this package goes through
:func:`roi_align` here, which makes input and RoIs contiguous float32 first.
"""
from typing import Tuple, Union

import torch
from mmcv.ops import roi_align as _mmcv_roi_align
from mmdet.structures.bbox import bbox2roi

from cllip_mm.structures import denormalize_boxes


def boxes_to_rois(boxes: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """Padded normalised boxes -> RoI rows in pixels of an (h, w) map.

    Args:
        boxes (Tensor): [B, R, 4] normalised xyxy in [0, 1].
        hw (tuple): (h, w) of the map the RoIs index (a token grid or an image).

    Returns:
        Tensor: [B * R, 5] rows ``(batch_index, x1, y1, x2, y2)`` (mmdet's ``bbox2roi``
        layout), image-major.
    """
    return bbox2roi(list(denormalize_boxes(boxes, hw).unbind(0)))


def roi_align(feats: torch.Tensor,
              rois: torch.Tensor,
              output_size: Union[int, Tuple[int, int]],
              spatial_scale: float = 1.0,
              sampling_ratio: int = 2,
              aligned: bool = True) -> torch.Tensor:
    """Average RoIAlign of ``feats`` [N, C, H, W] over ``rois`` [K, 5] -> [K, C, oh, ow].

    Any memory layout is accepted (transposed views, channels-last); the result is
    in ``feats``' dtype. The op itself runs in float32 on contiguous memory.
    """
    pooled = _mmcv_roi_align(feats.float().contiguous(), rois.float().contiguous(), output_size,
                             spatial_scale, sampling_ratio, 'avg', aligned)
    return pooled.to(feats.dtype)
