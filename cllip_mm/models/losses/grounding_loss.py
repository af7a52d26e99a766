# Copyright (c) cllip_mm contributors. All rights reserved.
import torch
import torch.nn as nn
from mmdet.models.losses.iou_loss import giou_loss
from mmdet.models.losses.smooth_l1_loss import l1_loss
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from torch import Tensor

from cllip_mm.registry import MODELS
from .utils import gather_variable_with_grad


@MODELS.register_module()
class GroundingLoss(nn.Module):
    """DETR's box loss for text -> box grounding (docs/method.md, section 4.4), over all ranks' regions.

    ``L = loss_weight * (loss_l1 * sum|b_cxcywh - t_cxcywh| / R + loss_giou * sum(1 - GIoU) / R)``

    The L1 term compares normalised cxcywh boxes, summed over the 4 coordinates and averaged
    over the boxes (mmdet's DETR head convention); GIoU compares the xyxy boxes. Predictions
    and targets of all ranks are gathered with gradients, so R is the global number of
    regions. With R == 0 the loss is a zero that still depends on ``pred_cxcywh``.

    Args:
        loss_l1 (float): Weight of the L1 term. Defaults to 5.
        loss_giou (float): Weight of the GIoU term. Defaults to 2.
        loss_weight (float): Multiplier of the sum. Defaults to 1.
    """

    def __init__(self,
                 loss_l1: float = 5.0,
                 loss_giou: float = 2.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_l1 = loss_l1
        self.loss_giou = loss_giou
        self.loss_weight = loss_weight

    def forward(self, pred_cxcywh: Tensor, target_xyxy: Tensor) -> Tensor:
        """
        Args:
            pred_cxcywh (Tensor): [R, 4] predicted boxes, normalised cxcywh in (0, 1).
            target_xyxy (Tensor): [R, 4] target boxes, normalised xyxy in [0, 1].

        Returns:
            Tensor: the scalar loss over the global regions (equal on every rank).
        """
        if pred_cxcywh.dim() != 2 or pred_cxcywh.size(-1) != 4 or \
                pred_cxcywh.shape != target_xyxy.shape:
            raise ValueError(f'{type(self).__name__}: pred_cxcywh and target_xyxy must both be '
                             f'[R, 4], got {tuple(pred_cxcywh.shape)} and '
                             f'{tuple(target_xyxy.shape)}')
        # Gather both in one collective; targets carry no grad but travel along.
        boxes = gather_variable_with_grad(
            torch.stack([pred_cxcywh, target_xyxy.to(pred_cxcywh)], dim=1))
        pred_cxcywh, target_xyxy = boxes[:, 0], boxes[:, 1]
        num_boxes = pred_cxcywh.size(0)
        if num_boxes == 0:
            return pred_cxcywh.sum() * 0
        loss_l1 = l1_loss(pred_cxcywh, bbox_xyxy_to_cxcywh(target_xyxy), avg_factor=num_boxes)
        loss_giou = giou_loss(
            bbox_cxcywh_to_xyxy(pred_cxcywh), target_xyxy, avg_factor=num_boxes)
        return self.loss_weight * (self.loss_l1 * loss_l1 + self.loss_giou * loss_giou)

    def extra_repr(self) -> str:
        return (f'loss_l1={self.loss_l1}, loss_giou={self.loss_giou}, '
                f'loss_weight={self.loss_weight}')
