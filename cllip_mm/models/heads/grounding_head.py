# Copyright (c) cllip_mm contributors. All rights reserved.
"""Grounding: a text prompt plus the image's tokens -> a box."""
from typing import Optional

import torch
import torch.nn as nn
from mmdet.models.layers.transformer.utils import MLP
from mmengine.model import BaseModule

from cllip_mm.registry import MODELS
from ..prompters import Prompter


@MODELS.register_module()
class GroundingHead(BaseModule):
    """Text embedding -> prompt token -> the Prompter's layers -> box (spec 3.4).

    The prompt token is ``Linear(text_embed) + text type embedding``; it goes through the
    *same* :class:`Prompter` layers as box prompts (shared weights), then a 3-layer MLP and
    a sigmoid.

    Args:
        embed_dim (int): Width D of the text embeddings.
        width (int): Width C of the Prompter.
        num_box_layers (int): Layers of the box MLP.
    """

    def __init__(self, embed_dim: int, width: int, num_box_layers: int = 3,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.text_proj = nn.Linear(embed_dim, width)
        self.text_type_embed = nn.Parameter(torch.zeros(width))
        self.box_head = MLP(width, width, 4, num_box_layers)

    def forward(self,
                text_embeds: torch.Tensor,
                patch_tokens: torch.Tensor,
                prompter: Prompter,
                patch_embeds: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            text_embeds (Tensor): [B, R, D] embeddings of the phrases to ground.
            patch_tokens (Tensor): [B, C, h, w] output tokens of the image encoder.
            prompter (Prompter): Whose layers (and image context) are shared.
            patch_embeds (Tensor, optional): [B, C, h, w] the stem's patch embeddings,
                when the prompter's ``context_sources`` use them.

        Returns:
            Tensor: [B, R, 4] boxes, normalised cxcywh in (0, 1).
        """
        prompts = self.text_proj(text_embeds) + self.text_type_embed
        context = prompter.image_context(patch_tokens, patch_embeds)
        return self.box_head(prompter.run_layers(prompts, context)).sigmoid()
