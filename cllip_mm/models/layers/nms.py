# Copyright (c) cllip_mm contributors. All rights reserved.
"""NMS with the memory-layout contract made explicit, once for all callers.

mmcv's RoIAlign reads storage, not strides (:mod:`.roi_align`). Its CPU NMS was checked to
give the same result on non-contiguous boxes (``tests/test_models/test_layers/test_nms.py``);
the CUDA kernels could not be checked here, so inputs are made contiguous as a guard.
"""
from typing import Tuple

import torch
from mmcv import ops


def nms(boxes: torch.Tensor, scores: torch.Tensor,
        iou_threshold: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """``mmcv.ops.nms`` on boxes [N, 4] xyxy and scores [N] of any layout -> (dets
    [K, 5], keep [K])."""
    return ops.nms(boxes.float().contiguous(), scores.float().contiguous(), iou_threshold)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor,
                nms_cfg: dict) -> Tuple[torch.Tensor, torch.Tensor]:
    """``mmcv.ops.batched_nms`` (NMS within each ``idxs`` group) on inputs of any
    layout -> (dets [K, 5], keep [K])."""
    return ops.batched_nms(boxes.float().contiguous(), scores.float().contiguous(),
                           idxs.contiguous(), nms_cfg)
