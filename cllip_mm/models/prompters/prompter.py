# Copyright (c) cllip_mm contributors. All rights reserved.
"""The Prompter: a box prompt plus the image's tokens -> a region embedding."""
from typing import Optional

import torch
import torch.nn as nn
from mmcv.ops import roi_align
from mmdet.models.layers.transformer.utils import coordinate_to_encoding
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from mmengine.model import BaseModule

from cllip_mm.registry import MODELS
from ..layers import Attention, build_activation


class PrompterLayer(nn.Module):
    """Prompt tokens attend to the image tokens and to themselves, never to each other.

    Pre-norm: ``x + attn(ln_1(x), [ln_kv(image); ln_1(x)])`` then ``x + mlp(ln_2(x))``.
    The mask lets prompt r see every image token and key r only, so a region's embedding
    does not depend on which other prompts share the batch.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, act: str = 'gelu') -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.ln_kv = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), build_activation(act), nn.Linear(hidden, width))

    def forward(self, prompts: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        """prompts [B, R, C], image_tokens [B, N, C] -> [B, R, C]."""
        b, r, _ = prompts.shape
        n = image_tokens.shape[1]
        q = self.ln_1(prompts)
        kv = torch.cat([self.ln_kv(image_tokens), q], dim=1)
        mask = torch.ones(r, n + r, dtype=torch.bool, device=prompts.device)
        mask[:, n:] = torch.eye(r, dtype=torch.bool, device=prompts.device)
        x = prompts + self.attn(q, kv, attn_mask=mask)
        return x + self.mlp(self.ln_2(x))


@MODELS.register_module()
class Prompter(BaseModule):
    """Turns box prompts into region embeddings (spec 3.3).

    1. ``box_embed = MLP(sine(box cxcywh))`` + a learned "box" type embedding;
    2. ``roi = Linear(mean_kxk(RoIAlign(patch_tokens, box)))`` (``mmcv.ops.roi_align``,
       ``aligned=True``; boxes are mapped to the patch grid, i.e. spatial_scale 1/p);
    3. ``num_layers`` :class:`PrompterLayer` onto the image tokens (skipped when
       ``region_pooler='roi'``, the "pool the patches in the box" ablation);
    4. LayerNorm and a linear projection to ``embed_dim`` (normalised by the caller).

    Args:
        width (int): Width C of the image encoder's patch tokens.
        embed_dim (int): Output width D (the text embedding width).
        num_layers (int): Prompter layers (shared with the grounding head).
        heads (int): Attention heads.
        mlp_ratio (float): MLP hidden width / C.
        roi_output_size (int): k of the k x k RoIAlign grid.
        roi_sampling_ratio (int): RoIAlign samples per bin (0 = adaptive).
        box_encoding_feats (int): Sine features per box coordinate.
        region_pooler (str): 'prompter' (default) or 'roi'.
        use_roi_features (bool): Add the RoIAlign content to the prompt token.
        act (str): Activation in the MLPs.
    """

    def __init__(self,
                 width: int,
                 embed_dim: int,
                 num_layers: int = 1,
                 heads: int = 8,
                 mlp_ratio: float = 4.0,
                 roi_output_size: int = 4,
                 roi_sampling_ratio: int = 2,
                 box_encoding_feats: int = 32,
                 region_pooler: str = 'prompter',
                 use_roi_features: bool = True,
                 act: str = 'gelu',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if region_pooler not in ('prompter', 'roi'):
            raise ValueError(f"region_pooler must be 'prompter' or 'roi', got {region_pooler!r}")
        self.width = width
        self.embed_dim = embed_dim
        self.region_pooler = region_pooler
        self.use_roi_features = use_roi_features
        self.roi_output_size = roi_output_size
        self.roi_sampling_ratio = roi_sampling_ratio
        self.box_encoding_feats = box_encoding_feats
        self.box_mlp = nn.Sequential(
            nn.Linear(4 * box_encoding_feats, width), build_activation(act), nn.Linear(width, width))
        self.box_type_embed = nn.Parameter(torch.zeros(width))
        self.roi_proj = nn.Linear(width, width)
        self.layers = nn.ModuleList(
            PrompterLayer(width, heads, mlp_ratio, act) for _ in range(num_layers))
        self.ln_out = nn.LayerNorm(width)
        self.proj = nn.Linear(width, embed_dim)

    def encode_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """Sine encoding then MLP. boxes: [B, R, 4] normalised xyxy -> [B, R, C]."""
        feats = coordinate_to_encoding(
            bbox_xyxy_to_cxcywh(boxes), num_feats=self.box_encoding_feats)
        return self.box_mlp(feats)

    def roi_features(self, patch_tokens: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Mean of the k x k RoIAlign grid of each box.

        Args:
            patch_tokens (Tensor): [B, C, h, w] patch grid.
            boxes (Tensor): [B, R, 4] normalised xyxy of the network input.

        Returns:
            Tensor: [B, R, C].
        """
        b, r, _ = boxes.shape
        h, w = patch_tokens.shape[-2:]
        scale = boxes.new_tensor([w, h, w, h])
        batch_index = torch.arange(b, device=boxes.device, dtype=boxes.dtype)
        rois = torch.cat([batch_index.repeat_interleave(r)[:, None], (boxes * scale).flatten(0, 1)], dim=1)
        pooled = roi_align(patch_tokens.float(), rois.float(), self.roi_output_size, 1.0,
                           self.roi_sampling_ratio, 'avg', True)
        return pooled.mean(dim=(2, 3)).to(patch_tokens.dtype).unflatten(0, (b, r))

    def run_layers(self, prompts: torch.Tensor, patch_tokens: torch.Tensor) -> torch.Tensor:
        """The shared prompter layers. prompts [B, R, C], patch_tokens [B, C, h, w] -> [B, R, C]."""
        image_tokens = patch_tokens.flatten(2).transpose(1, 2)
        for layer in self.layers:
            prompts = layer(prompts, image_tokens)
        return prompts

    def forward(self, patch_tokens: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Region embeddings, *not* normalised.

        Args:
            patch_tokens (Tensor): [B, C, h, w] from the image encoder.
            boxes (Tensor): [B, R, 4] normalised xyxy in [0, 1] of the network input.
                Padding rows are allowed; their outputs are simply ignored by the caller.

        Returns:
            Tensor: [B, R, D].
        """
        tokens = self.encode_boxes(boxes) + self.box_type_embed
        if self.use_roi_features:
            tokens = tokens + self.roi_proj(self.roi_features(patch_tokens, boxes))
        if self.region_pooler == 'prompter':
            tokens = self.run_layers(tokens, patch_tokens)
        return self.proj(self.ln_out(tokens))
