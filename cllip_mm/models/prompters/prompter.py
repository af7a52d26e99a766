# Copyright (c) cllip_mm contributors. All rights reserved.
"""The Prompter: a box prompt plus the image's tokens -> a region embedding."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmdet.models.layers import SinePositionalEncoding
from mmdet.models.layers.transformer.utils import coordinate_to_encoding
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from mmengine.model import BaseModule

from cllip_mm.registry import MODELS
from ..layers import Attention, boxes_to_rois, build_activation, roi_align


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
    """Turns box prompts into region embeddings (docs/method.md, section 3.3).

    1. ``box_embed = MLP(sine(box cxcywh))`` + a learned "box" type embedding;
    2. ``roi = Linear(mean_kxk(RoIAlign(tokens, box)))`` (mmcv's RoIAlign through
       :func:`cllip_mm.models.layers.roi_align`, so any memory layout of the maps is
       read correctly; ``aligned=True``; boxes are mapped to the patch grid),
       one linear layer per map in ``roi_sources``: 'final' (the encoder's output
       patch tokens) and/or 'patch_embed' (the stem's patch embeddings); with
       ``roi_pool='flatten'`` the linear layer reads the whole k x k grid instead of its
       mean, so the token keeps the layout (shape) of what is in the box;
    3. ``num_layers`` :class:`PrompterLayer` onto the image tokens (skipped when
       ``region_pooler='roi'``, the "pool the patches in the box" ablation); the image
       tokens are the sum over ``context_sources`` ('final' as is, 'patch_embed'
       through a linear layer);
    4. LayerNorm and a linear projection to ``embed_dim`` (normalised by the caller).

    Args:
        width (int): Width C of the image encoder's patch tokens.
        embed_dim (int): Output width D (the text embedding width).
        num_layers (int): Prompter layers (shared with the grounding head).
        heads (int): Attention heads.
        mlp_ratio (float): MLP hidden width / C.
        roi_output_size (int): k of the k x k RoIAlign grid.
        roi_sampling_ratio (int): RoIAlign samples per bin (0 = adaptive).
        roi_pool (str): How the k x k RoIAlign grid becomes the prompt token's content:
            'mean' (mean over the grid, then Linear(C, C)) or 'flatten' (Linear(C*k*k, C)
            on the whole grid, which keeps where in the box things are).
        box_encoding_feats (int): Sine features per box coordinate.
        region_pooler (str): 'prompter' (default) or 'roi'.
        roi_sources (sequence[str]): Which token maps RoIAlign pools the prompt token's
            content from (summed): 'final' and/or 'patch_embed'; empty for none
            (docs/region_effect.md compares them on the demo).
        context_sources (sequence[str]): Which token maps make the image tokens that
            the layers attend to (summed), like ``roi_sources``; must contain 'final'.
        context_pos_encoding (bool): Add a fixed 2-D sine encoding of each token's
            position (mmdet's ``SinePositionalEncoding``) to the image tokens, so that
            what a prompt attends to says where it is (helps the grounding head).
        act (str): Activation in the MLPs.
    """
    TOKEN_MAPS = ('final', 'patch_embed')

    def __init__(self,
                 width: int,
                 embed_dim: int,
                 num_layers: int = 1,
                 heads: int = 8,
                 mlp_ratio: float = 4.0,
                 roi_output_size: int = 4,
                 roi_sampling_ratio: int = 2,
                 roi_pool: str = 'mean',
                 box_encoding_feats: int = 32,
                 region_pooler: str = 'prompter',
                 roi_sources: Sequence[str] = ('final', ),
                 context_sources: Sequence[str] = ('final', ),
                 context_pos_encoding: bool = False,
                 act: str = 'gelu',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if region_pooler not in ('prompter', 'roi'):
            raise ValueError(f"region_pooler must be 'prompter' or 'roi', got {region_pooler!r}")
        if roi_pool not in ('mean', 'flatten'):
            raise ValueError(f"roi_pool must be 'mean' or 'flatten', got {roi_pool!r}")
        self.width = width
        self.embed_dim = embed_dim
        self.region_pooler = region_pooler
        for name, sources in (('roi_sources', roi_sources), ('context_sources', context_sources)):
            unknown = set(sources) - set(self.TOKEN_MAPS)
            if unknown:
                raise ValueError(f'{name} must be in {self.TOKEN_MAPS}, got {sorted(unknown)}')
        if 'final' not in context_sources:
            raise ValueError(f"context_sources must contain 'final', got {tuple(context_sources)}")
        self.roi_sources = tuple(roi_sources)
        self.context_sources = tuple(context_sources)
        self.roi_output_size = roi_output_size
        self.roi_sampling_ratio = roi_sampling_ratio
        self.roi_pool = roi_pool
        self.box_encoding_feats = box_encoding_feats
        self.box_mlp = nn.Sequential(
            nn.Linear(4 * box_encoding_feats, width), build_activation(act), nn.Linear(width, width))
        self.box_type_embed = nn.Parameter(torch.zeros(width))
        roi_width = width * roi_output_size**2 if roi_pool == 'flatten' else width
        self.roi_proj = nn.ModuleDict({source: nn.Linear(roi_width, width) for source in self.roi_sources})
        self.context_pos_encoding = (
            SinePositionalEncoding(num_feats=width // 2, normalize=True) if context_pos_encoding else None)
        self.context_proj = nn.ModuleDict(
            {source: nn.Linear(width, width) for source in self.context_sources if source != 'final'})
        self.layers = nn.ModuleList(
            PrompterLayer(width, heads, mlp_ratio, act) for _ in range(num_layers))
        self.ln_out = nn.LayerNorm(width)
        self.proj = nn.Linear(width, embed_dim)

    def encode_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """Sine encoding then MLP. boxes: [B, R, 4] normalised xyxy -> [B, R, C]."""
        feats = coordinate_to_encoding(
            bbox_xyxy_to_cxcywh(boxes), num_feats=self.box_encoding_feats)
        return self.box_mlp(feats)

    def roi_grid(self, patch_tokens: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """The k x k RoIAlign grid of each box.

        Args:
            patch_tokens (Tensor): [B, C, h, w] patch grid (any memory layout).
            boxes (Tensor): [B, R, 4] normalised xyxy of the network input.

        Returns:
            Tensor: [B, R, C, k, k].
        """
        b, r, _ = boxes.shape
        rois = boxes_to_rois(boxes, patch_tokens.shape[-2:])
        pooled = roi_align(patch_tokens, rois, self.roi_output_size, 1.0, self.roi_sampling_ratio)
        return pooled.unflatten(0, (b, r))

    def roi_features(self, patch_tokens: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """What ``roi_proj`` reads: [B, R, C] (grid mean) or [B, R, C*k*k] ('flatten')."""
        grid = self.roi_grid(patch_tokens, boxes)
        return grid.flatten(2) if self.roi_pool == 'flatten' else grid.mean(dim=(3, 4))

    @staticmethod
    def _token_map(source: str, patch_tokens: torch.Tensor,
                   patch_embeds: Optional[torch.Tensor]) -> torch.Tensor:
        token_map = patch_tokens if source == 'final' else patch_embeds
        if token_map is None:
            raise ValueError(f'the Prompter reads {source!r} token maps but none were given '
                             '(pass patch_embeds=ViTOutput.patch_embeds)')
        return token_map

    def image_context(self, patch_tokens: torch.Tensor,
                      patch_embeds: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The image tokens [B, h*w, C] that the layers attend to (see ``context_sources``)."""
        context = patch_tokens.flatten(2).transpose(1, 2)
        for source, proj in self.context_proj.items():
            token_map = self._token_map(source, patch_tokens, patch_embeds)
            context = context + proj(token_map.flatten(2).transpose(1, 2))
        if self.context_pos_encoding is not None:
            b, _, h, w = patch_tokens.shape
            no_padding = patch_tokens.new_zeros(b, h, w, dtype=torch.bool)
            pos = self.context_pos_encoding(no_padding).to(context.dtype)  # [B, C, h, w]
            context = context + pos.flatten(2).transpose(1, 2)
        return context

    def run_layers(self, prompts: torch.Tensor, image_context: torch.Tensor) -> torch.Tensor:
        """The shared prompter layers. prompts [B, R, C], image_context [B, N, C] (from
        :meth:`image_context`) -> [B, R, C]."""
        for layer in self.layers:
            prompts = layer(prompts, image_context)
        return prompts

    def forward(self,
                patch_tokens: torch.Tensor,
                boxes: torch.Tensor,
                patch_embeds: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Region embeddings, *not* normalised.

        Args:
            patch_tokens (Tensor): [B, C, h, w] output tokens of the image encoder.
            boxes (Tensor): [B, R, 4] normalised xyxy in [0, 1] of the network input.
                Padding rows are allowed; their outputs are simply ignored by the caller.
            patch_embeds (Tensor, optional): [B, C, h, w] the encoder stem's patch
                embeddings (``ViTOutput.patch_embeds``); needed when 'patch_embed' is in
                ``roi_sources`` or ``context_sources``.

        Returns:
            Tensor: [B, R, D].
        """
        return self.embed_tokens(self.region_tokens(patch_tokens, boxes, patch_embeds))

    @staticmethod
    def context_from_vit(vit):
        """What :meth:`embed_boxes` reads of the image: the ``ViTOutput`` itself (the
        interface :class:`ClocPrompter` shares)."""
        return vit

    def embed_boxes(self, vit, boxes: torch.Tensor,
                    valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """:meth:`forward` on a ``ViTOutput``: boxes [B, R, 4] -> [B, R, D], not normalised
        (``valid`` is accepted for the common interface; padding rows are computed)."""
        return self(vit.patch_tokens, boxes, vit.patch_embeds)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Region tokens [..., C] (:meth:`region_tokens`) -> region embeddings [..., D],
        not normalised."""
        return self.proj(self.ln_out(tokens))

    def region_tokens(self,
                      patch_tokens: torch.Tensor,
                      boxes: torch.Tensor,
                      patch_embeds: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The box prompts after the layers, before the output projection: [B, R, C].
        Arguments as in :meth:`forward`."""
        tokens = self.encode_boxes(boxes) + self.box_type_embed
        for source, proj in self.roi_proj.items():
            token_map = self._token_map(source, patch_tokens, patch_embeds)
            tokens = tokens + proj(self.roi_features(token_map, boxes))
        if self.region_pooler == 'prompter':
            tokens = self.run_layers(tokens, self.image_context(patch_tokens, patch_embeds))
        return tokens
