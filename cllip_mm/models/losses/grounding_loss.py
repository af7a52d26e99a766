# Copyright (c) cllip_mm contributors. All rights reserved.
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
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

    Boxes may come with weights (a ``'token'`` grounding head reads several boxes per
    region, whose weights sum to 1 per region): the terms are then weighted sums over the
    global sum of the weights, which is again the number of regions.

    :meth:`token_loss` is the ``'token'`` head's cross-entropy over image tokens,
    ``loss_weight * loss_token * mean_r CE(logits_r, target_r)``, also over all ranks.

    Args:
        loss_l1 (float): Weight of the L1 term. Defaults to 5.
        loss_giou (float): Weight of the GIoU term. Defaults to 2.
        loss_token (float): Weight of :meth:`token_loss`. Defaults to 1.
        loss_weight (float): Multiplier of every term. Defaults to 1.
    """

    def __init__(self,
                 loss_l1: float = 5.0,
                 loss_giou: float = 2.0,
                 loss_token: float = 1.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_l1 = loss_l1
        self.loss_giou = loss_giou
        self.loss_token = loss_token
        self.loss_weight = loss_weight

    def forward(self, pred_cxcywh: Tensor, target_xyxy: Tensor,
                weight: Optional[Tensor] = None) -> Tensor:
        """
        Args:
            pred_cxcywh (Tensor): [R, 4] predicted boxes, normalised cxcywh in (0, 1).
            target_xyxy (Tensor): [R, 4] target boxes, normalised xyxy in [0, 1].
            weight (Tensor, optional): [R] per-box weights; ones by default.

        Returns:
            Tensor: the scalar loss over the global regions (equal on every rank).
        """
        if pred_cxcywh.dim() != 2 or pred_cxcywh.size(-1) != 4 or \
                pred_cxcywh.shape != target_xyxy.shape or \
                (weight is not None and weight.shape != pred_cxcywh.shape[:1]):
            raise ValueError(f'{type(self).__name__}: pred_cxcywh and target_xyxy must both be '
                             f'[R, 4] (and weight [R]), got {tuple(pred_cxcywh.shape)} and '
                             f'{tuple(target_xyxy.shape)}'
                             + ('' if weight is None else f' ({tuple(weight.shape)})'))
        if weight is None:
            weight = pred_cxcywh.new_ones(pred_cxcywh.size(0))
        # Gather all three in one collective; targets and weights carry no grad.
        boxes = gather_variable_with_grad(torch.cat(
            [pred_cxcywh, target_xyxy.to(pred_cxcywh), weight.to(pred_cxcywh)[:, None]], dim=1))
        pred_cxcywh, target_xyxy, weight = boxes[:, :4], boxes[:, 4:8], boxes[:, 8]
        if pred_cxcywh.size(0) == 0:
            return pred_cxcywh.sum() * 0
        total = weight.sum()
        loss_l1 = l1_loss(pred_cxcywh, bbox_xyxy_to_cxcywh(target_xyxy), weight=weight[:, None],
                          avg_factor=total)
        loss_giou = giou_loss(
            bbox_cxcywh_to_xyxy(pred_cxcywh), target_xyxy, weight=weight, avg_factor=total)
        return self.loss_weight * (self.loss_l1 * loss_l1 + self.loss_giou * loss_giou)

    def token_loss(self, token_logits: Tensor, token_targets: Tensor) -> Tensor:
        """
        Args:
            token_logits (Tensor): [R, N] each phrase's scores of the N image tokens.
            token_targets (Tensor): [R] the index of the token holding each target centre.

        Returns:
            Tensor: the scalar loss, the mean over the global regions.
        """
        per_region = gather_variable_with_grad(
            F.cross_entropy(token_logits, token_targets, reduction='none'))
        if per_region.numel() == 0:
            return token_logits.sum() * 0
        return self.loss_weight * self.loss_token * per_region.mean()

    def extra_repr(self) -> str:
        return (f'loss_l1={self.loss_l1}, loss_giou={self.loss_giou}, '
                f'loss_token={self.loss_token}, loss_weight={self.loss_weight}')
