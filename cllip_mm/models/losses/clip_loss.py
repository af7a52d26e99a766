# Copyright (c) cllip_mm contributors. All rights reserved.
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import get_rank, get_world_size
from torch import Tensor

from cllip_mm.registry import MODELS
from ..utils.logit_scale import INIT_LOGIT_SCALE, MAX_LOGIT_SCALE
from .utils import all_gather_sizes, gather_variable_with_grad, global_value


def check_pair(image_embeds: Tensor, text_embeds: Tensor, name: str) -> None:
    """Raise a ValueError unless both are [B, D] with the same shape."""
    if image_embeds.dim() != 2 or image_embeds.shape != text_embeds.shape:
        raise ValueError(f'{name}: image_embeds and text_embeds must both be [B, D] with the '
                         f'same shape, got {tuple(image_embeds.shape)} and '
                         f'{tuple(text_embeds.shape)}')


class GatheredPairs(NamedTuple):
    """Image-text pairs of all ranks, gathered with gradients (see :func:`gather_pairs`).

    Attributes:
        image_embeds (Tensor): [B_global, D], rank 0's rows first.
        text_embeds (Tensor): [B_global, D].
        offset (int): Row of this rank's first pair in the global batch.
    """
    image_embeds: Tensor
    text_embeds: Tensor
    offset: int


def gather_pairs(image_embeds: Tensor, text_embeds: Tensor) -> GatheredPairs:
    """Gather image-text pairs [B, D] of all ranks with gradients, in one collective.

    Ranks may hold different B (e.g. an uneven last batch).
    """
    sizes = all_gather_sizes(image_embeds.size(0), image_embeds.device)
    pairs = gather_variable_with_grad(torch.stack([image_embeds, text_embeds], dim=1), sizes)
    return GatheredPairs(pairs[:, 0], pairs[:, 1], sum(sizes[:get_rank()]))


@MODELS.register_module()
class ClipContrastiveLoss(nn.Module):
    """CLIP's symmetric InfoNCE over the global batch (docs/method.md, section 4.1).

    ``L = loss_weight * 1/2 [CE(s V T^T, I) + CE(s T V^T, I)]`` with ``s = exp(logit_scale)``
    clamped at ``exp(max_logit_scale)``. The clamp is applied out of place in the forward,
    so the gradient of ``logit_scale`` is zero above it. Embeddings of all ranks are gathered
    with gradients (see :mod:`.utils`).

    Args:
        init_logit_scale (float): Initial log scale. Defaults to
            :data:`~cllip_mm.models.utils.INIT_LOGIT_SCALE` (log(1 / 0.07)).
        max_logit_scale (float): Upper clamp of the log scale. Defaults to
            :data:`~cllip_mm.models.utils.MAX_LOGIT_SCALE` (log 100, CLIP's cap).
        local_loss (bool): open_clip's ``local_loss``: each rank computes the logits of
            its own images and texts against the global batch ([B_k, B_global] twice
            instead of [B_global, B_global]; memory linear in the global batch) and its
            share of the loss; the DDP-averaged gradients are those of the global loss
            and the returned value is the global loss (see :mod:`.utils`). Identical to
            the global form in one process. Defaults to True.
        loss_weight (float): Multiplier of the loss. Defaults to 1.
    """

    def __init__(self,
                 init_logit_scale: float = INIT_LOGIT_SCALE,
                 max_logit_scale: float = MAX_LOGIT_SCALE,
                 local_loss: bool = True,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.local_loss = local_loss
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
        local_image, local_text = image_embeds, text_embeds
        image_embeds, text_embeds, offset = gather_pairs(image_embeds, text_embeds)
        num_pairs = image_embeds.size(0)
        if num_pairs == 0:  # empty global batch: a zero still in the graph
            return (image_embeds.sum() + text_embeds.sum()) * 0
        scale = self.get_scale()
        if not self.local_loss:
            logits = scale * image_embeds @ text_embeds.t()
            labels = torch.arange(num_pairs, device=logits.device)
            loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))
            return self.loss_weight * loss
        # Rows of this rank's pairs: [B_k, B_global] image->text and text->image.
        labels = offset + torch.arange(local_image.size(0), device=local_image.device)
        loss_i2t = F.cross_entropy(scale * local_image @ text_embeds.t(), labels, reduction='sum')
        loss_t2i = F.cross_entropy(scale * local_text @ image_embeds.t(), labels, reduction='sum')
        share = get_world_size() * 0.5 * (loss_i2t + loss_t2i) / num_pairs
        return self.loss_weight * global_value(share)

    def extra_repr(self) -> str:
        return (f'max_logit_scale={self.max_logit_scale:.4f}, '
                f'local_loss={self.local_loss}, loss_weight={self.loss_weight}')
