# Copyright (c) cllip_mm contributors. All rights reserved.
"""The CLIP image encoder: a pre-norm ViT with a class token."""
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from cllip_mm.registry import MODELS
from ..layers import Transformer, resize_pos_embed


class ViTOutput(NamedTuple):
    """What :class:`VisionTransformer` returns.

    Attributes:
        image_embed (Tensor): [B, D] projected class token, *not* normalised.
        patch_tokens (Tensor): [B, C, H/p, W/p] patch tokens as a contiguous 2-D map (row-major from
            the image's top-left; token (i, j) covers pixels [j*p, (j+1)*p) x [i*p, (i+1)*p)).
        cls_token (Tensor): [B, C] class token after ``ln_post``.
        patch_embeds (Tensor): [B, C, H/p, W/p] the stem's patch embeddings (``conv1``
            output, before the position embedding and ``ln_pre``), same grid, contiguous
            (also for a channels-last input).
        tokens (Tensor): [B, 1 + h*w, C] the last block's output sequence (class token
            first, then the patches row-major), before ``ln_post`` and ``proj``: what the
            paper's Prompter reads (:class:`~cllip_mm.models.prompters.ClocPrompter`).
    """
    image_embed: torch.Tensor
    patch_tokens: torch.Tensor
    cls_token: torch.Tensor
    patch_embeds: torch.Tensor
    tokens: Optional[torch.Tensor] = None


@MODELS.register_module()
class VisionTransformer(BaseModule):
    """CLIP's ViT (OpenAI / open_clip parameter names).

    Args:
        img_size (int | tuple): Input size the position embedding is made for. Other
            sizes are handled by bicubic interpolation of the embedding.
        patch_size (int): Patch size p.
        width (int): Token width C.
        layers (int): Number of transformer blocks.
        heads (int): Attention heads.
        embed_dim (int): Output width D of ``proj``.
        mlp_ratio (float): MLP hidden width / C.
        act (str): 'gelu' or 'quick_gelu' (OpenAI weights).
        drop_path_rate (float): Stochastic depth.
        patch_token_norm (str): What the patch tokens get before they are returned:
            'ln_post' (the final LayerNorm, as the class token gets) or 'none' (the raw
            output of the last block).
        frozen_stages (int): -1 trains everything; 0 freezes the patch embedding, class
            token, position embedding and ``ln_pre``; k > 0 also freezes blocks 0..k-1.
        grad_checkpointing (bool): Recompute blocks in backward.
    """

    def __init__(self,
                 img_size: Union[int, Tuple[int, int]] = 224,
                 patch_size: int = 16,
                 width: int = 768,
                 layers: int = 12,
                 heads: int = 12,
                 embed_dim: int = 512,
                 mlp_ratio: float = 4.0,
                 act: str = 'gelu',
                 drop_path_rate: float = 0.0,
                 patch_token_norm: str = 'ln_post',
                 frozen_stages: int = -1,
                 grad_checkpointing: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if patch_token_norm not in ('ln_post', 'none'):
            raise ValueError(f"patch_token_norm must be 'ln_post' or 'none', got {patch_token_norm!r}")
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.patch_size = patch_size
        self.grid_size = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        self.width = width
        self.embed_dim = embed_dim
        self.patch_token_norm = patch_token_norm
        self.frozen_stages = frozen_stages

        scale = width**-0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(
            scale * torch.randn(1 + self.grid_size[0] * self.grid_size[1], width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads, mlp_ratio, act, drop_path_rate,
                                       grad_checkpointing)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, embed_dim))
        self._freeze_stages()

    @property
    def num_layers(self) -> int:
        return len(self.transformer.resblocks)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen: list = [self.conv1, self.ln_pre]
        frozen += list(self.transformer.resblocks[:self.frozen_stages])
        for param in (self.class_embedding, self.positional_embedding):
            param.requires_grad = False
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'VisionTransformer':
        super().train(mode)
        self._freeze_stages()
        return self

    def pos_embed_for(self, grid: Sequence[int]) -> torch.Tensor:
        """Position embedding [1 + h*w, C] for a patch grid (h, w)."""
        return resize_pos_embed(self.positional_embedding, self.grid_size, tuple(grid))

    def forward_tokens(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Run the blocks.

        Args:
            images (Tensor): [B, 3, H, W] normalised RGB.

        Returns:
            tuple: block outputs [B, 1 + h*w, C] (class token first) and the stem's
            patch embeddings [B, C, h, w].
        """
        patch_embeds = self.conv1(images)
        x = patch_embeds.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed_for(patch_embeds.shape[-2:]).to(x.dtype)
        return self.transformer(self.ln_pre(x)), patch_embeds

    def project_patch_tokens(self, patch_tokens: torch.Tensor) -> torch.Tensor:
        """The image projection applied to every patch token, as ``image_embed`` is the
        projected class token (MaskCLIP's dense features of a CLIP ViT).

        Args:
            patch_tokens (Tensor): [B, C, h, w] ``ViTOutput.patch_tokens`` of this
                encoder (token (i, j) covers pixels [j*p, (j+1)*p) x [i*p, (i+1)*p) of
                the input). With ``patch_token_norm='none'`` they are the raw block
                output and get ``ln_post`` here first; with ``'ln_post'`` they have it.

        Returns:
            Tensor: [B, h*w, D] ``ln_post(token) @ proj`` per patch, row-major from the
            top-left, *not* normalised.
        """
        tokens = patch_tokens.flatten(2).transpose(1, 2)  # [B, h*w, C]
        if self.patch_token_norm == 'none':
            tokens = self.ln_post(tokens)
        return tokens @ self.proj

    def forward(self, images: torch.Tensor) -> ViTOutput:
        """images: [B, 3, H, W] normalised RGB, H and W multiples of ``patch_size``."""
        tokens, patch_embeds = self.forward_tokens(images)
        cls_token = self.ln_post(tokens[:, 0])
        patches = tokens[:, 1:]
        if self.patch_token_norm == 'ln_post':
            patches = self.ln_post(patches)
        # Contiguous NCHW: custom ops (mmcv's RoIAlign) read storage, not strides.
        patch_map = patches.transpose(1, 2).unflatten(2, patch_embeds.shape[-2:]).contiguous()
        return ViTOutput(cls_token @ self.proj, patch_map, cls_token, patch_embeds.contiguous(),
                         tokens)
