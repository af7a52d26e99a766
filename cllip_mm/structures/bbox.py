# Copyright (c) cllip_mm contributors. All rights reserved.
"""Boxes between the two frames the models use, and padded per image.

Frames: *pixels* are xyxy pixels of the network input (the padded batch, [H, W]);
*normalised* boxes are xyxy in [0, 1] of that same input, so they line up with the
patch grid. Boxes of an image smaller than the batch input (``img_shape`` < input,
bottom / right padding) keep their pixel values and normalise by the batch size.
"""
from typing import Sequence, Tuple, Union

import torch
from torch import Tensor


def _pixel_scale(hw: Sequence[int], like: Tensor) -> Tensor:
    """[4] (w, h, w, h) in ``like``'s float dtype and device."""
    h, w = hw
    dtype = like.dtype if like.is_floating_point() else torch.float32
    return torch.tensor([w, h, w, h], dtype=dtype, device=like.device)


def normalize_boxes(boxes: Tensor, hw: Sequence[int]) -> Tensor:
    """[..., 4] xyxy pixels of an (h, w) input -> [..., 4] normalised xyxy, clipped to
    [0, 1]."""
    return (boxes / _pixel_scale(hw, boxes)).clamp(0, 1)


def denormalize_boxes(boxes: Tensor, hw: Sequence[int]) -> Tensor:
    """[..., 4] normalised xyxy -> [..., 4] xyxy pixels of an (h, w) input."""
    return boxes * _pixel_scale(hw, boxes)


def padding_mask(counts: Sequence[int], device: Union[str, torch.device, None] = None) -> Tensor:
    """[B, Rmax] bool, True for the first ``counts[i]`` places of row i (Rmax =
    max(counts), 0 for no rows or no boxes)."""
    counts = torch.as_tensor(list(counts), dtype=torch.long, device=device)
    r_max = int(counts.max()) if len(counts) else 0
    return torch.arange(r_max, device=device)[None] < counts[:, None]


def pad_boxes(boxes: Sequence[Tensor], hw: Sequence[int],
              device: Union[str, torch.device, None] = None) -> Tuple[Tensor, Tensor]:
    """Per-image boxes, padded to one tensor and normalised.

    Args:
        boxes (list[Tensor]): For each image, [R_i, 4] xyxy pixels of the network input.
        hw (tuple): (h, w) of the network input (the padded batch).
        device: Where the result lives (default: the first boxes' device).

    Returns:
        tuple: ``padded`` [B, Rmax, 4] normalised xyxy in [0, 1] (zeros where padded)
        and ``valid`` [B, Rmax] bool (False for padding); ``padded[valid]`` are the
        boxes in image-major order.
    """
    if device is None:
        device = boxes[0].device if len(boxes) else 'cpu'
    valid = padding_mask([len(b) for b in boxes], device)
    padded = torch.zeros(*valid.shape, 4, device=device)
    if valid.shape[1]:
        # One scatter of all boxes (row-major order of ``valid``), not one copy per image.
        padded[valid] = normalize_boxes(torch.cat(list(boxes)).to(device).float(), hw)
    return padded, valid
