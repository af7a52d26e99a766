# Copyright (c) cllip_mm contributors. All rights reserved.
"""The CLOC image encoder as an MMDetection backbone with a ViTDet simple pyramid."""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from mmengine.logging import print_log
from mmengine.model import BaseModule

from cllip_mm.models.backbones import VisionTransformer, ViTOutput
from cllip_mm.models.layers import resize_pos_embed, square_grid
from cllip_mm.utils.weights_meta import check_pretrained_init


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a [B, C, H, W] map (ViTDet's ``LN2d``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()


def _pyramid_level(width: int, ratio: float) -> Tuple[nn.Module, int]:
    """One level of ViTDet's simple feature pyramid (Li et al., 2022, fig. 2).

    ``ratio`` = patch stride / output stride. ``ratio = 2^k`` (k >= 1): k stride-2
    deconvolutions halving the channels, with LayerNorm2d + GELU between them;
    ``ratio = 1``: identity; ``ratio = 1 / 2^k``: a 2^k x 2^k max pooling.

    Returns:
        tuple: (module, output channels).
    """
    log2 = math.log2(ratio)
    if log2 != int(log2):
        raise ValueError(f'patch stride / output stride must be a power of 2, got {ratio}')
    log2 = int(log2)
    if log2 == 0:
        return nn.Identity(), width
    if log2 < 0:
        k = 2**-log2
        return nn.MaxPool2d(kernel_size=k, stride=k), width
    layers: List[nn.Module] = []
    channels = width
    for i in range(log2):
        if i:
            layers += [LayerNorm2d(channels), nn.GELU()]
        layers.append(nn.ConvTranspose2d(channels, channels // 2, kernel_size=2, stride=2))
        channels //= 2
    return nn.Sequential(*layers), channels


@MODELS.register_module()
class ClocViT(BaseModule):
    """The cllip_mm :class:`VisionTransformer` with a ViTDet-style simple pyramid.

    The ViT runs on the (padded) detection input; its stride-``patch_size`` patch map
    [B, C, H/p, W/p] (exactly ``VisionTransformer(...).patch_tokens``) is turned into
    one map per stride in ``out_strides`` by deconvolutions (finer), identity (same)
    or max pooling (coarser), as ViTDet's SimpleFPN does before its lateral / output
    convolutions. Those convolutions are the job of a standard neck, so the outputs
    go straight into mmdet's ``FPN`` (``in_channels=backbone.out_channels``) or
    ``ChannelMapper`` and the usual RPN / RoI / DETR heads.

    The position embedding is interpolated (bicubic) to every input's patch grid at
    run time. A checkpoint whose embedding was made for another grid is resized when
    it is loaded (see :meth:`_load_from_state_dict`), so ``img_size`` may be the
    detection size while the checkpoint is the pretraining one.

    Parameter names are those of the cllip_mm encoder under ``vit.``, which is what
    ``tools/model_converters/cllip_to_mmdet.py`` writes (``backbone.vit.*``).

    Args:
        out_strides (Sequence[int]): Output strides, e.g. (4, 8, 16, 32) for FPN
            (ViTDet) or (8, 16, 32) for DINO / Grounding DINO. Each must be
            ``patch_size * 2^k`` for an integer k.
        init_cfg (dict, optional): E.g. ``dict(type='Pretrained', checkpoint=...,
            prefix='backbone.')`` for a converted checkpoint.
        **vit_cfg: The arguments of the cllip_mm :class:`VisionTransformer`, with its
            defaults: ``img_size`` (the size (h, w) the position embedding is stored
            for), ``patch_size`` (p, the stride of the patch map), ``width``,
            ``layers``, ``heads``, ``embed_dim`` (only sizes the unused image
            projection ``vit.proj``, kept so that checkpoints round-trip; it is
            frozen), ``mlp_ratio``, ``act``, ``drop_path_rate``, ``patch_token_norm``,
            ``frozen_stages`` (-1 trains everything; 0 freezes the patch embedding,
            class token, position embedding and ``ln_pre``; k > 0 also blocks
            0..k-1; frozen parts stay in eval mode) and ``grad_checkpointing``.

    Attributes:
        out_channels (tuple[int]): Channels of each output (C * out_stride / p for
            finer levels, C otherwise).
    """

    def __init__(self,
                 out_strides: Sequence[int] = (4, 8, 16, 32),
                 init_cfg: Optional[dict] = None,
                 **vit_cfg) -> None:
        super().__init__(init_cfg=init_cfg)
        self.vit = VisionTransformer(**vit_cfg)
        # The image projection (and ln_post when patch tokens skip it) feed only the
        # class-token embedding, which detection does not use: freeze them so that
        # DDP does not wait for their gradients.
        unused = [self.vit.proj]
        if self.vit.patch_token_norm == 'none':
            unused += list(self.vit.ln_post.parameters())
        for param in unused:
            param.requires_grad = False

        self.patch_size = self.vit.patch_size
        self.out_strides = tuple(out_strides)
        levels, channels = [], []
        for stride in self.out_strides:
            level, c = _pyramid_level(self.vit.width, self.patch_size / stride)
            levels.append(level)
            channels.append(c)
        self.pyramid = nn.ModuleList(levels)
        self.out_channels = tuple(channels)

    def init_weights(self) -> None:
        """As ``BaseModule``'s, after checking that a ``Pretrained`` checkpoint's meta
        asks for this ViT's activation (``cllip_mm.utils.weights_meta``)."""
        check_pretrained_init(self)
        super().init_weights()

    @property
    def num_layers(self) -> int:
        """Number of transformer blocks (for layer-wise LR decay)."""
        return self.vit.num_layers

    def encode(self, x: torch.Tensor) -> ViTOutput:
        """The cllip_mm encoder's full output (``patch_tokens``, ``patch_embeds``, ...).

        x: [B, 3, H, W] normalised RGB, H and W multiples of ``patch_size``.
        """
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f'{type(self).__name__}: input size {(h, w)} is not a multiple of the '
                f'patch size {self.patch_size}; set the data preprocessor\'s '
                f'pad_size_divisor to a multiple of it (e.g. {max(self.out_strides)})')
        return self.vit(x)

    def patch_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, 3, H, W] -> the patch map [B, C, H/p, W/p] of the cllip_mm encoder."""
        return self.encode(x).patch_tokens

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """x: [B, 3, H, W] -> one map [B, out_channels[i], H/s_i, W/s_i] per stride."""
        patches = self.patch_tokens(x)
        return tuple(level(patches) for level in self.pyramid)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs) -> None:
        """Resize a checkpoint's position embedding to ``vit.grid_size`` on load."""
        key = prefix + 'vit.positional_embedding'
        if key in state_dict:
            src = state_dict[key]
            dst = self.vit.positional_embedding
            if src.shape != dst.shape and src.dim() == 2 and src.shape[1] == dst.shape[1]:
                try:
                    src_grid = square_grid(src, name=key)
                except ValueError as error:
                    raise ValueError(f'{error}; convert the checkpoint with '
                                     'tools/model_converters/cllip_to_mmdet.py --img-size H W'
                                     ) from error
                state_dict[key] = resize_pos_embed(src, src_grid, self.vit.grid_size)
                print_log(f'{key}: resized the position embedding from a '
                          f'{src_grid[0]}x{src_grid[1]} to a '
                          f'{self.vit.grid_size[0]}x{self.vit.grid_size[1]} grid',
                          logger='current')
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)
