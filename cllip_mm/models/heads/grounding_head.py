# Copyright (c) cllip_mm contributors. All rights reserved.
"""Grounding: a text prompt plus the image's tokens -> a box."""
import math
from typing import Optional

import torch
import torch.nn as nn
from mmdet.models.layers.transformer.utils import MLP, inverse_sigmoid
from mmengine.model import BaseModule

from cllip_mm.registry import MODELS
from ..prompters import Prompter, PrompterLayer


def token_centres(h: int, w: int, device=None) -> torch.Tensor:
    """Centres [h*w, 2] (x, y), normalised to (0, 1), of an h x w patch grid in the
    row-major order of ``tokens.flatten(2)``."""
    ys, xs = torch.meshgrid((torch.arange(h, device=device) + 0.5) / h,
                            (torch.arange(w, device=device) + 0.5) / w, indexing='ij')
    return torch.stack([xs.flatten(), ys.flatten()], dim=-1)


@MODELS.register_module()
class GroundingHead(BaseModule):
    """Text embedding -> prompt token -> the Prompter's layers -> box (docs/method.md, section 3.4).

    The prompt token is ``Linear(text_embed) + text type embedding``; it goes through the
    *same* :class:`Prompter` layers as box prompts (shared weights), then through
    ``num_layers`` layers of its own (:class:`PrompterLayer`, none by default). The box
    comes from one of two heads (``box_mode``):

    - ``'mlp'``: a 3-layer MLP and a sigmoid on the prompt token (DETR's box head);
    - ``'anchored'``: the prompt scores every image token (scaled dot product of two
      linear maps); the softmax of the scores weighs the token centres into an anchor
      point and the image tokens into a feature; an MLP on ``prompt + feature`` gives an
      offset of the anchor in logit space (Deformable DETR's reference-point
      refinement) and the box size. The loss reaches the token scores directly, so
      *where* the phrase is gets learnt as a matching problem, like the region loss.

    Args:
        embed_dim (int): Width D of the text embeddings.
        width (int): Width C of the Prompter.
        num_box_layers (int): Layers of the box MLP.
        num_layers (int): Grounding-only prompter layers after the shared ones.
        heads (int): Attention heads of those layers.
        box_mode (str): 'mlp' (default) or 'anchored'.
    """

    BOX_MODES = ('mlp', 'anchored')

    def __init__(self, embed_dim: int, width: int, num_box_layers: int = 3,
                 num_layers: int = 0, heads: int = 4, box_mode: str = 'mlp',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if box_mode not in self.BOX_MODES:
            raise ValueError(f'box_mode must be in {self.BOX_MODES}, got {box_mode!r}')
        self.box_mode = box_mode
        self.text_proj = nn.Linear(embed_dim, width)
        self.text_type_embed = nn.Parameter(torch.zeros(width))
        self.layers = nn.ModuleList(PrompterLayer(width, heads) for _ in range(num_layers))
        if box_mode == 'anchored':
            self.query_proj = nn.Linear(width, width)
            self.key_proj = nn.Linear(width, width)
        self.box_head = MLP(width, width, 4, num_box_layers)

    def token_scores(self, prompts: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """'anchored' mode: scores [B, R, N] of the prompts [B, R, C] for the image tokens
        [B, N, C]."""
        return self.query_proj(prompts) @ self.key_proj(context).transpose(1, 2) / math.sqrt(
            prompts.shape[-1])

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
        prompts = prompter.run_layers(prompts, context)
        for layer in self.layers:
            prompts = layer(prompts, context)
        if self.box_mode == 'mlp':
            return self.box_head(prompts).sigmoid()
        weights = self.token_scores(prompts, context).softmax(dim=-1)  # [B, R, N]
        centres = token_centres(*patch_tokens.shape[-2:], device=weights.device)
        anchor = weights @ centres.to(weights.dtype)  # [B, R, 2] (x, y)
        out = self.box_head(prompts + weights @ context)
        return torch.cat([(inverse_sigmoid(anchor) + out[..., :2]).sigmoid(),
                          out[..., 2:].sigmoid()], dim=-1)
