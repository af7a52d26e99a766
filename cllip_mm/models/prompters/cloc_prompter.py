# Copyright (c) cllip_mm contributors. All rights reserved.
"""The paper's Prompter (CLOC, sec. 3.3, App. B.1, Table A) and its RoI-alignment ablation.

A prompt (a box as two sinusoidal corner encodings, or a text embedding) is *prepended* to the
image encoder's output tokens (before ``ln_post`` / ``proj``); the sequence goes through one
single-head pre-norm transformer encoder layer of the ViT's width (full self-attention), and the
region embedding is the layer's output, average-pooled, normalised and projected to the text
embedding width D. The ViT runs once per image; the layer runs once per prompt.

Computation shared by the prompts of an image (``impl='shared'``, exact)
--------------------------------------------------------------------------
For P prompts of T tokens on an image of N tokens, the naive form runs the layer on P
sequences of T + N tokens. Most of it does not depend on the prompt:

- ``norm1`` and the q / k / v projections of the N image tokens, their N x N attention logits,
  the softmax-weighted sum of their values over the *image* keys ``A`` (and its log-sum-exp
  ``lse``), and ``A`` through the output projection: once per image.
- An image token's attention over the N + T keys is the image-key part (``A``, weight
  ``exp(lse)``) and the T prompt keys combined by one softmax over T + 1 logits: exact.
  The output projection is linear, so it is applied to ``A`` once and to each prompt's T
  values, never to the per-prompt N x C result.
- Average pooling is linear, so the layer's second MLP matrix is applied to the pooled hidden
  activation ([P, 4C]) instead of to every token ([P, N, 4C]).

What remains per prompt is ``norm2`` and the first MLP matrix over its N + T tokens (the MLP is
non-linear in each token, and each token's input depends on the prompt), plus O(N T C) for
the prompt keys. ``impl='naive'`` runs ``nn.TransformerEncoderLayer`` on the P full
sequences; the two agree within float tolerance (tests/test_models/test_cloc_prompter.py)
and ``benchmarks/prompter_step.py`` measures both. End to end, a whole CLOC training step
(ViT-B/16, batch 4, 4 boxes per image, one CPU thread; median of 4,
``benchmarks/results/prompter_step_b16.json``) takes 25.1 s with ``'shared'`` and 33.6 s with
``'naive'`` (1.27x and 1.69x a CLIP step of 19.9 s); with 64 boxes per image the Prompter's
share is 161 ms per box shared vs 455 ms naive.
"""
import math
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.layers.transformer.utils import coordinate_to_encoding
from mmengine.model import BaseModule

from cllip_mm.registry import MODELS
from ..layers import boxes_to_rois, roi_align


class PrompterContext(NamedTuple):
    """What the prompts of an image share (:meth:`ClocPrompter.image_context`).

    Attributes:
        tokens (Tensor): [B, N, C] the image tokens (ViT output before ``ln_post``).
        grid_hw (tuple): (h, w) of the patch grid; the last h*w of the N tokens are the
            patches, row-major (the class token, if any, comes first).
        q, k, v (Tensor): [B, H, N, C/H] the image tokens' projections (after ``norm1``).
        attn_out (Tensor): [B, H, N, C] per head, the attention of the image tokens over
            the image keys alone, through the head's slice of the output projection (no bias).
        lse (Tensor): [B, H, N] log-sum-exp of the image tokens' logits over the image keys.
    """
    tokens: torch.Tensor
    grid_hw: tuple
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    attn_out: torch.Tensor
    lse: torch.Tensor


@MODELS.register_module()
class ClocPrompter(BaseModule):
    """The paper's Prompter: prompt tokens prepended to the image tokens, one transformer
    encoder layer, its own average pool and projection.

    Marks follow ``docs/method.md``: [paper] stated in the paper, [paper?] our reading
    where the paper is not word for word clear (configurable), [ours] where it is silent.

    - [paper] A box is its two corners (top-left, bottom-right), each a sinusoidal
      encoding (``corner_tokens=2``); [paper?] ``corner_tokens=1`` encodes the four
      coordinates into one token. [ours] The encoding is mmdet's ``coordinate_to_encoding``
      (DINO's: ``num_feats`` sine / cosine pairs per coordinate, 2 pi scale), of width C.
    - [paper] A text prompt is the pooled + projected text embedding of the same text
      encoder; [ours] it enters the width-C sequence through a linear map (``text_proj``;
      the paper does not say how a D-wide embedding becomes a C-wide token).
    - [paper] One layer, single head (``heads=1``), the ViT's width, full self-attention
      over the prompt and image tokens (the ViT's output tokens, class token included);
      [ours] pre-norm like the ViT (``nn.TransformerEncoderLayer(norm_first=True)``,
      GELU, MLP ratio 4, no dropout).
    - [paper] Its own global average pool and projection to D; [paper?] the pool covers
      all tokens (``pool='all'``) or the image tokens only (``pool='image'``); [ours] a
      LayerNorm (``ln_out``, like CLIP's ``ln_post``) precedes the projection.
    - [ours, not the paper's] ``pool='box'``: a box prompt's average covers its prompt
      tokens and the patch tokens whose centre lies in the box (the patch holding the box
      centre always counts), not every token; text prompts, which carry no box, still pool
      over all tokens. The layer is unchanged (every token still attends to the whole
      image and the corners), so only the read-out is local. ``box_grid=k`` splits the box
      into k x k cells, each averaged the same way (its prompt tokens and the patches
      whose centre lies in the cell, or the patch holding the cell centre), the cells
      normalised by ``ln_out`` one by one and concatenated before the projection
      (``proj``: k*k*C -> D), so that the read-out keeps the layout inside the box; a
      text prompt's all-token average fills every cell. ``docs/region_effect.md``
      ("The paper's recipe on the demo") measures both against the paper's pool.

    Args:
        width (int): C, the ViT's token width.
        embed_dim (int): D, the text embedding width.
        heads (int): Attention heads of the layer (the paper: 1).
        mlp_ratio (float): MLP hidden width / C.
        corner_tokens (int): 2 (a token per corner) or 1 (one token for the box).
        pool (str): 'all', 'image' or 'box' (see above).
        impl (str): 'shared' (default; the computation shared by an image's prompts, see the
            module docstring) or 'naive' (``nn.TransformerEncoderLayer`` per prompt); equal
            within float tolerance.
        box_grid (int): [ours] k of ``pool='box'``'s k x k cells (1: one average).
        patch_pos_encoding (bool): [ours, off in the paper's recipe] Add to each patch token
            the sine encoding of its centre, in the corner tokens' basis
            (``coordinate_to_encoding`` of (x, y)), so that a corner's key and a patch's query
            meet in one coordinate system (``docs/region_effect.md`` measures it).
    """

    def __init__(self,
                 width: int,
                 embed_dim: int,
                 heads: int = 1,
                 mlp_ratio: float = 4.0,
                 corner_tokens: int = 2,
                 pool: str = 'all',
                 impl: str = 'shared',
                 box_grid: int = 1,
                 patch_pos_encoding: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if corner_tokens not in (1, 2):
            raise ValueError(f'corner_tokens must be 1 or 2, got {corner_tokens!r}')
        if pool not in ('all', 'image', 'box'):
            raise ValueError(f"pool must be 'all', 'image' or 'box', got {pool!r}")
        if box_grid < 1 or (box_grid > 1 and pool != 'box'):
            raise ValueError(f"box_grid must be >= 1, and > 1 only with pool='box'; got "
                             f'box_grid={box_grid!r}, pool={pool!r}')
        if impl not in ('shared', 'naive'):
            raise ValueError(f"impl must be 'shared' or 'naive', got {impl!r}")
        if width % (4 if corner_tokens == 1 else 2) or width % heads:
            raise ValueError(f'width {width} must divide into the corner encodings and the '
                             f'{heads} heads')
        self.width = width
        self.embed_dim = embed_dim
        self.heads = heads
        self.corner_tokens = corner_tokens
        self.pool = pool
        self.box_grid = box_grid
        self.num_cells = box_grid**2
        self.impl = impl
        self.patch_pos_encoding = patch_pos_encoding
        self.text_proj = nn.Linear(embed_dim, width)
        self.layer = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=int(width * mlp_ratio), dropout=0.0,
            activation='gelu', batch_first=True, norm_first=True)
        self.ln_out = nn.LayerNorm(width)
        self.proj = nn.Linear(width * self.num_cells, embed_dim)

    # ------------------------------------------------------------------ prompts
    def box_tokens(self, boxes: torch.Tensor) -> torch.Tensor:
        """Sinusoidal corner encodings. boxes [..., 4] normalised xyxy -> [..., T, C]."""
        lead = boxes.shape[:-1]
        coords = boxes.reshape(-1, 1, 4).float()
        if self.corner_tokens == 2:
            corners = coords.view(-1, 2, 2)  # (x1, y1), (x2, y2)
            enc = coordinate_to_encoding(corners, num_feats=self.width // 2)
        else:
            enc = coordinate_to_encoding(coords, num_feats=self.width // 4)
        return enc.to(boxes.dtype).view(*lead, self.corner_tokens, self.width)

    def text_tokens(self, text_embeds: torch.Tensor) -> torch.Tensor:
        """Text embeddings [..., D] -> prompt tokens [..., 1, C]."""
        return self.text_proj(text_embeds).unsqueeze(-2)

    # ------------------------------------------------------------------ shared part
    def image_context(self, tokens: torch.Tensor, grid_hw: tuple) -> PrompterContext:
        """What every prompt of an image shares.

        Args:
            tokens (Tensor): [B, N, C] the ViT's output tokens before ``ln_post``
                (``ViTOutput.tokens``).
            grid_hw (tuple): (h, w) of the patch grid (the last h*w tokens).
        """
        attn = self.layer.self_attn
        b, n, c = tokens.shape
        if self.patch_pos_encoding:
            tokens = tokens + self.patch_encoding(grid_hw, n, tokens)
        q, k, v = F.linear(self.layer.norm1(tokens), attn.in_proj_weight,
                           attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        logits = q @ k.transpose(-1, -2) / math.sqrt(c // self.heads)  # [B, H, N, N]
        lse = logits.logsumexp(dim=-1)
        mixed = (logits - lse[..., None]).exp() @ v  # [B, H, N, C/H]
        attn_out = torch.einsum('bhnd,chd->bhnc', mixed,
                                attn.out_proj.weight.unflatten(1, (self.heads, -1)))
        return PrompterContext(tokens, tuple(grid_hw), q, k, v, attn_out, lse)

    def patch_encoding(self, grid_hw: tuple, num_tokens: int, like: torch.Tensor) -> torch.Tensor:
        """[N, C]: the sine encoding of each patch centre (normalised (x, y), the corner
        tokens' basis) for the last h*w of ``num_tokens`` tokens, zeros for the others."""
        h, w = grid_hw
        ys, xs = torch.meshgrid((torch.arange(h, device=like.device) + 0.5) / h,
                                (torch.arange(w, device=like.device) + 0.5) / w, indexing='ij')
        centres = torch.stack([xs.flatten(), ys.flatten()], -1)[None]  # [1, h*w, 2]
        enc = coordinate_to_encoding(centres, num_feats=self.width // 2)[0].to(like.dtype)
        return torch.cat([enc.new_zeros(num_tokens - h * w, self.width), enc])

    def context_from_vit(self, vit) -> PrompterContext:
        """:meth:`image_context` of a ``ViTOutput``."""
        if vit.tokens is None:
            raise ValueError('ClocPrompter reads ViTOutput.tokens (the output sequence before '
                             'ln_post), which this image encoder does not return')
        return self.image_context(vit.tokens, vit.patch_tokens.shape[-2:])

    # ------------------------------------------------------------------ per prompt
    def forward(self, context: PrompterContext, prompts: torch.Tensor,
                image_index: torch.Tensor,
                pool_weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Embeddings of P prompts, *not* normalised.

        Args:
            context (PrompterContext): From :meth:`image_context` (B images).
            prompts (Tensor): [P, T, C] prompt tokens (:meth:`box_tokens`,
                :meth:`text_tokens`).
            image_index (Tensor): [P] long, the image of each prompt.
            pool_weights (Tensor, optional): [P, K, N] weights of the image tokens in each
                of a prompt's K = ``box_grid``**2 averages (:meth:`box_pool_weights`); None:
                every image token counts once in each. The prompt tokens count once each
                in every average (none with ``pool='image'``).

        Returns:
            Tensor: [P, D].
        """
        if prompts.dim() != 3 or prompts.size(-1) != self.width or \
                image_index.shape != prompts.shape[:1]:
            raise ValueError(f'{type(self).__name__}: prompts must be [P, T, {self.width}] and '
                             f'image_index [P], got {tuple(prompts.shape)} and '
                             f'{tuple(image_index.shape)}')
        if prompts.size(0) == 0:
            return prompts.new_zeros(0, self.embed_dim)
        p, t = prompts.shape[:2]
        n = context.tokens.size(1)
        k = self.num_cells
        if pool_weights is None:
            pool_weights = prompts.new_ones(p, k, n)
        elif pool_weights.shape != (p, k, n):
            raise ValueError(f'{type(self).__name__}: pool_weights must be [P, K, N] = '
                             f'[{p}, {k}, {n}], got {tuple(pool_weights.shape)}')
        prompt_weight = 0.0 if self.pool == 'image' else 1.0
        norm = (pool_weights.sum(2) + prompt_weight * t)[..., None]  # [P, K, 1]
        if self.impl == 'naive':
            pooled = self._pool_naive(context.tokens, prompts, image_index, pool_weights,
                                      prompt_weight)
        else:
            pooled = self._pool_shared(context, prompts, image_index, pool_weights,
                                       prompt_weight)
        return self.proj(self.ln_out(pooled / norm).flatten(1))

    def box_pool_weights(self, boxes: torch.Tensor, grid_hw: tuple,
                         num_tokens: int) -> torch.Tensor:
        """[ours] ``pool='box'``: which image tokens a box's average covers.

        Args:
            boxes (Tensor): [P, 4] normalised xyxy.
            grid_hw (tuple): (h, w); the patches are the last h*w of ``num_tokens`` tokens.
            num_tokens (int): N.

        Returns:
            Tensor: [P, K, N] for the K = ``box_grid``**2 cells of each box (row-major):
            1 for the patches whose centre lies in the cell and for the patch that holds
            the cell's centre, 0 for the others and for the tokens before the patches.
        """
        h, w = grid_hw
        g = self.box_grid
        frac = torch.arange(g + 1, device=boxes.device, dtype=boxes.dtype) / g  # cell edges
        x1, y1, x2, y2 = (c[:, None] for c in boxes.unbind(-1))
        xs, ys = x1 + (x2 - x1) * frac, y1 + (y2 - y1) * frac  # [P, g + 1]
        cells = torch.stack([xs[:, None, :-1].expand(-1, g, -1), ys[:, :-1, None].expand(-1, -1, g),
                             xs[:, None, 1:].expand(-1, g, -1), ys[:, 1:, None].expand(-1, -1, g)],
                            -1).flatten(1, 2)  # [P, K, 4] xyxy, row-major
        x1, y1, x2, y2 = cells.unbind(-1)  # [P, K]
        cy = (torch.arange(h, device=boxes.device, dtype=boxes.dtype) + 0.5) / h
        cx = (torch.arange(w, device=boxes.device, dtype=boxes.dtype) + 0.5) / w
        inside_y = (cy >= y1[..., None]) & (cy <= y2[..., None])  # [P, K, h]
        inside_x = (cx >= x1[..., None]) & (cx <= x2[..., None])  # [P, K, w]
        inside = (inside_y[..., :, None] & inside_x[..., None, :]).flatten(2)  # [P, K, h*w]
        row = (((y1 + y2) / 2 * h).long()).clamp(0, h - 1)
        col = (((x1 + x2) / 2 * w).long()).clamp(0, w - 1)
        inside.scatter_(2, (row * w + col)[..., None], True)
        return torch.cat([inside.new_zeros(*inside.shape[:2], num_tokens - h * w), inside],
                         2).to(boxes.dtype)

    def _pool_naive(self, tokens: torch.Tensor, prompts: torch.Tensor,
                    image_index: torch.Tensor, pool_weights: torch.Tensor,
                    prompt_weight: float) -> torch.Tensor:
        """The weighted sums [P, K, C] over the layer's outputs (``forward`` divides)."""
        t = prompts.size(1)
        out = self.layer(torch.cat([prompts, tokens[image_index]], dim=1))  # [P, T + N, C]
        return (prompt_weight * out[:, None, :t].sum(2)
                + torch.einsum('pkn,pnc->pkc', pool_weights, out[:, t:]))

    def _pool_shared(self, ctx: PrompterContext, prompts: torch.Tensor,
                     image_index: torch.Tensor, pool_weights: torch.Tensor,
                     prompt_weight: float) -> torch.Tensor:
        """:meth:`_pool_naive`'s weighted sum, computed from what the prompts share."""
        layer, attn, heads = self.layer, self.layer.self_attn, self.heads
        p, t, c = prompts.shape
        n = ctx.tokens.size(1)
        scale = 1 / math.sqrt(c // heads)
        w_out = attn.out_proj.weight.unflatten(1, (heads, -1))  # [C, H, C/H]
        qp, kp, vp = F.linear(layer.norm1(prompts), attn.in_proj_weight,
                              attn.in_proj_bias).unflatten(-1, (3 * heads, -1)).chunk(3, dim=2)
        # qp, kp, vp: [P, T, H, C/H]
        k_img, v_img = ctx.k[image_index], ctx.v[image_index]  # [P, H, N, C/H]

        # Image-token queries: image keys (shared, via lse) and the T prompt keys.
        logits_p = torch.einsum('phnd,pthd->phnt', ctx.q[image_index], kp) * scale
        weights = torch.cat([ctx.lse[image_index][..., None], logits_p], -1).softmax(-1)
        prompt_out = torch.einsum('pthd,chd->pthc', vp, w_out)  # prompt values, projected
        image_attn = (torch.einsum('phn,phnc->pnc', weights[..., 0], ctx.attn_out[image_index])
                      + torch.einsum('phnt,pthc->pnc', weights[..., 1:], prompt_out))
        hidden_img = ctx.tokens[image_index] + image_attn + attn.out_proj.bias  # [P, N, C]

        # MLP: sum w (h + W2 g(h) + b2) = sum w h + W2 sum w g(h) + b2 sum w (the pool is
        # linear).
        def act_sum(h, weights=None):
            act = layer.activation(layer.linear1(layer.norm2(h)))
            return act.sum(1) if weights is None else torch.einsum('pkn,pnc->pkc', weights, act)

        w2, b2 = layer.linear2.weight, layer.linear2.bias
        img_sum = torch.einsum('pkn,pnc->pkc', pool_weights, hidden_img)  # [P, K, C]
        img_act = act_sum(hidden_img, pool_weights)
        img_count = pool_weights.sum(2, keepdim=True)  # [P, K, 1]
        if not prompt_weight:  # the prompt tokens' outputs are not pooled: skip them
            return img_sum + F.linear(img_act, w2) + img_count * b2
        # Prompt-token queries: over the image keys and their own prompt's T keys.
        logits = torch.cat([torch.einsum('pthd,phnd->phtn', qp, k_img),
                            torch.einsum('pthd,pshd->phts', qp, kp)], -1) * scale
        w = logits.softmax(-1)
        mixed = (torch.einsum('phtn,phnd->pthd', w[..., :n], v_img)
                 + torch.einsum('phts,pshd->pthd', w[..., n:], vp))
        hidden_p = prompts + attn.out_proj(mixed.flatten(2))  # [P, T, C]
        return (hidden_p.sum(1)[:, None] + img_sum
                + F.linear(act_sum(hidden_p)[:, None] + img_act, w2) + (img_count + t) * b2)

    # ------------------------------------------------------------------ conveniences
    def embed_boxes(self, context: PrompterContext, boxes: torch.Tensor,
                    valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Region embeddings of box prompts, not normalised.

        Args:
            context (PrompterContext): Of the B images.
            boxes (Tensor): [B, M, 4] normalised xyxy in [0, 1] of the network input.
            valid (Tensor, optional): [B, M] bool; padding gets zeros and costs nothing.

        Returns:
            Tensor: [B, M, D].
        """
        return self._embed_padded(context, self.box_tokens(boxes), valid,
                                  boxes if self.pool == 'box' else None)

    def embed_texts(self, context: PrompterContext, text_embeds: torch.Tensor,
                    valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Grounding embeddings ``z(y) = Prompter(f_T(y), f_I(x))`` of text prompts.

        Args:
            text_embeds (Tensor): [B, M, D] text embeddings of the phrases to ground.
            valid (Tensor, optional): [B, M] bool.

        Returns:
            Tensor: [B, M, D], not normalised.
        """
        return self._embed_padded(context, self.text_tokens(text_embeds), valid)

    def _embed_padded(self, context: PrompterContext, prompts: torch.Tensor,
                      valid: Optional[torch.Tensor],
                      boxes: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, m = prompts.shape[:2]
        if valid is None:
            valid = prompts.new_ones(b, m, dtype=torch.bool)
        images, slots = valid.nonzero(as_tuple=True)
        weights = None if boxes is None else self.box_pool_weights(
            boxes[images, slots], context.grid_hw, context.tokens.size(1))
        out = prompts.new_zeros(b, m, self.embed_dim)
        out[images, slots] = self(context, prompts[images, slots], images, weights)
        return out


@MODELS.register_module()
class ClocRoIPrompter(ClocPrompter):
    """The paper's "RoI alignment instead of the Prompter" ablation (Table 2, rows 4, 9,
    14): a box's region embedding is the mean of the RoIAlign grid of the image's patch
    tokens in the box, through the Prompter's ``ln_out`` and ``proj``. Text prompts (the
    grounding branch) still go through the layer, as in :class:`ClocPrompter`.

    Args:
        roi_output_size (int): k of the k x k RoIAlign grid.
        roi_sampling_ratio (int): RoIAlign samples per bin.
        **kwargs: :class:`ClocPrompter`'s.
    """

    def __init__(self, roi_output_size: int = 4, roi_sampling_ratio: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.roi_output_size = roi_output_size
        self.roi_sampling_ratio = roi_sampling_ratio

    def embed_boxes(self, context: PrompterContext, boxes: torch.Tensor,
                    valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, m, _ = boxes.shape
        h, w = context.grid_hw
        grid = context.tokens[:, -h * w:].transpose(1, 2).unflatten(2, (h, w))  # [B, C, h, w]
        rois = boxes_to_rois(boxes, (h, w))
        pooled = roi_align(grid, rois, self.roi_output_size, 1.0,
                           self.roi_sampling_ratio).mean(dim=(2, 3))
        out = self.proj(self.ln_out(pooled)).unflatten(0, (b, m))
        return out if valid is None else out * valid[..., None]
