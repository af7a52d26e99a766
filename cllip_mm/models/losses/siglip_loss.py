# Copyright (c) cllip_mm contributors. All rights reserved.
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import get_world_size
from torch import Tensor

from cllip_mm.registry import MODELS
from .clip_loss import check_pair, gather_pairs
from .utils import global_value


@MODELS.register_module()
class SigLipLoss(nn.Module):
    """SigLIP's pairwise sigmoid loss over the global batch (docs/method.md, section 4.2).

    With the gathered embeddings ``x_i`` (images) and ``y_j`` (texts) of the ``B_g`` pairs,
    ``z_ij = t * <x_i, y_j> + b``, ``t = exp(logit_scale)`` and ``l_ij = +1`` if ``i == j``
    else ``-1``::

        L = -loss_weight / B_g * sum_ij log sigmoid(l_ij * z_ij)

    Args:
        init_logit_scale (float): Initial log temperature. Defaults to log(10).
        init_logit_bias (float): Initial bias. Defaults to -10.
        max_logit_scale (float, optional): Upper clamp of the log temperature; None (the
            default, as in SigLIP) for no clamp.
        local_loss (bool): Each rank computes the rows of its own images against the
            global texts ([B_k, B_global] instead of [B_global, B_global]) and its share
            of the loss; same gradients and value as the global form (see
            ``ClipContrastiveLoss``). Defaults to True.
        loss_weight (float): Multiplier of the loss. Defaults to 1.
    """

    def __init__(self,
                 init_logit_scale: float = math.log(10),
                 init_logit_bias: float = -10.0,
                 max_logit_scale: Optional[float] = None,
                 local_loss: bool = True,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.local_loss = local_loss
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.logit_bias = nn.Parameter(torch.tensor(float(init_logit_bias)))
        self.max_logit_scale = max_logit_scale
        self.loss_weight = loss_weight

    def get_scale(self) -> Tensor:
        """The (clamped) temperature ``t`` as a 0-dim tensor, e.g. to log it."""
        logit_scale = self.logit_scale
        if self.max_logit_scale is not None:
            logit_scale = logit_scale.clamp(max=self.max_logit_scale)
        return logit_scale.exp()

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
        local_image = image_embeds
        image_embeds, text_embeds, offset = gather_pairs(image_embeds, text_embeds)
        num_pairs = image_embeds.size(0)
        if num_pairs == 0:  # empty global batch: a zero still in the graph
            return (image_embeds.sum() + text_embeds.sum()) * 0
        if not self.local_loss:
            logits = self.get_scale() * image_embeds @ text_embeds.t() + self.logit_bias
            # +1 on the diagonal, -1 elsewhere.
            signs = 2 * torch.eye(num_pairs, device=logits.device, dtype=logits.dtype) - 1
            loss = -F.logsigmoid(signs * logits).sum() / num_pairs
            return self.loss_weight * loss
        # This rank's images against all texts: [B_k, B_global], +1 at (i, offset + i).
        logits = self.get_scale() * local_image @ text_embeds.t() + self.logit_bias
        rows = torch.arange(local_image.size(0), device=logits.device)
        signs = torch.full_like(logits, -1.).index_put_((rows, offset + rows),
                                                        logits.new_ones(()))
        share = -get_world_size() * F.logsigmoid(signs * logits).sum() / num_pairs
        return self.loss_weight * global_value(share)

    def extra_repr(self) -> str:
        return (f'max_logit_scale={self.max_logit_scale}, local_loss={self.local_loss}, '
                f'loss_weight={self.loss_weight}')
