# Copyright (c) cllip_mm contributors. All rights reserved.
import math
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from cllip_mm.registry import MODELS
from .utils import gather_variable_with_grad


def check_pair(image_embeds: Tensor, text_embeds: Tensor, name: str) -> None:
    """Raise a ValueError unless both are [B, D] with the same shape."""
    if image_embeds.dim() != 2 or image_embeds.shape != text_embeds.shape:
        raise ValueError(f'{name}: image_embeds and text_embeds must both be [B, D] with the '
                         f'same shape, got {tuple(image_embeds.shape)} and '
                         f'{tuple(text_embeds.shape)}')


def gather_pairs(image_embeds: Tensor, text_embeds: Tensor) -> Tuple[Tensor, Tensor]:
    """Gather image-text pairs [B, D] of all ranks with gradients, in one collective.

    Ranks may hold different B (e.g. an uneven last batch).
    """
    pairs = gather_variable_with_grad(torch.stack([image_embeds, text_embeds], dim=1))
    return pairs[:, 0], pairs[:, 1]


@MODELS.register_module()
class ClipContrastiveLoss(nn.Module):
    """CLIP's symmetric InfoNCE over the global batch (docs/method.md, section 4.1).

    ``L = loss_weight * 1/2 [CE(s V T^T, I) + CE(s T V^T, I)]`` with ``s = exp(logit_scale)``
    clamped at ``exp(max_logit_scale)``. The clamp is applied out of place in the forward,
    so the gradient of ``logit_scale`` is zero above it. Embeddings of all ranks are gathered
    with gradients (see :mod:`.utils`).

    Args:
        init_logit_scale (float): Initial log scale. Defaults to log(1 / 0.07).
        max_logit_scale (float): Upper clamp of the log scale. Defaults to log(100).
        loss_weight (float): Multiplier of the loss. Defaults to 1.
    """

    def __init__(self,
                 init_logit_scale: float = math.log(1 / 0.07),
                 max_logit_scale: float = math.log(100),
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        # The name contains ``logit_scale``: optimizer configs exclude it from weight decay.
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.max_logit_scale = max_logit_scale
        self.loss_weight = loss_weight

    def get_scale(self) -> Tensor:
        """The clamped scale ``s`` (a 0-dim tensor with grad), e.g. ``.item()`` to log it."""
        return self.logit_scale.clamp(max=self.max_logit_scale).exp()

    def forward(self, image_embeds: Tensor, text_embeds: Tensor) -> Tensor:
        """
        Args:
            image_embeds (Tensor): [B, D] L2-normalised image embeddings of this rank.
            text_embeds (Tensor): [B, D] L2-normalised caption embeddings; row i pairs
                with image i.

        Returns:
            Tensor: the scalar loss of the global batch (equal on every rank).
        """
        check_pair(image_embeds, text_embeds, type(self).__name__)
        image_embeds, text_embeds = gather_pairs(image_embeds, text_embeds)
        if image_embeds.size(0) == 0:  # empty global batch: a zero still in the graph
            return (image_embeds.sum() + text_embeds.sum()) * 0
        logits = self.get_scale() * image_embeds @ text_embeds.t()
        labels = torch.arange(logits.size(0), device=logits.device)
        loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))
        return self.loss_weight * loss

    def extra_repr(self) -> str:
        return (f'max_logit_scale={self.max_logit_scale:.4f}, '
                f'loss_weight={self.loss_weight}')
