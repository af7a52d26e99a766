# Copyright (c) cllip_mm contributors. All rights reserved.
"""Pre-norm transformer blocks of CLIP, with attention through torch SDPA.

Parameter names follow OpenAI CLIP / open_clip (``ln_1``, ``attn.in_proj_weight``,
``attn.out_proj``, ``ln_2``, ``mlp.c_fc``, ``mlp.c_proj``), so their state dicts load
with no renaming and Hugging Face ``CLIPModel`` weights map one to one.
"""
from collections import OrderedDict
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from torch.utils.checkpoint import checkpoint


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``, the activation of OpenAI's CLIP weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def build_activation(name: str) -> nn.Module:
    """``'gelu'`` (open_clip default) or ``'quick_gelu'`` (OpenAI CLIP)."""
    if name == 'gelu':
        return nn.GELU()
    if name == 'quick_gelu':
        return QuickGELU()
    raise ValueError(f"act must be 'gelu' or 'quick_gelu', got {name!r}")


class Attention(nn.Module):
    """Multi-head attention with ``nn.MultiheadAttention``'s parameter layout.

    Queries and keys/values may differ (cross-attention); the fused ``in_proj_weight``
    [3C, C] is split as q, k, v.
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f'width {width} is not divisible by heads {heads}')
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self,
                query: torch.Tensor,
                key_value: Optional[torch.Tensor] = None,
                attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            query (Tensor): [B, Lq, C].
            key_value (Tensor, optional): [B, Lk, C]; ``query`` when omitted.
            attn_mask (Tensor, optional): bool (True = may attend) or additive float,
                broadcastable to [B, heads, Lq, Lk].
        Returns:
            Tensor: [B, Lq, C].
        """
        c = query.shape[-1]
        if key_value is None:  # self-attention: one GEMM for q, k and v
            q, k, v = F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        else:
            w_q, w_kv = self.in_proj_weight.split([c, 2 * c])
            b_q, b_kv = self.in_proj_bias.split([c, 2 * c])
            q = F.linear(query, w_q, b_q)
            k, v = F.linear(key_value, w_kv, b_kv).chunk(2, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out_proj(out.transpose(1, 2).flatten(2))


class ResidualAttentionBlock(nn.Module):
    """``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``, with optional drop-path."""

    def __init__(self,
                 width: int,
                 heads: int,
                 mlp_ratio: float = 4.0,
                 act: str = 'gelu',
                 drop_path: float = 0.0) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.ln_1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict([('c_fc', nn.Linear(width, hidden)), ('gelu', build_activation(act)),
                         ('c_proj', nn.Linear(hidden, width))]))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.ln_1(x), attn_mask=attn_mask))
        return x + self.drop_path(self.mlp(self.ln_2(x)))


class Transformer(nn.Module):
    """A stack of :class:`ResidualAttentionBlock` (``resblocks``).

    Args:
        width (int): Token width C.
        layers (int): Number of blocks.
        heads (int): Attention heads.
        mlp_ratio (float): MLP hidden width / C.
        act (str): 'gelu' or 'quick_gelu'.
        drop_path_rate (float): Stochastic depth, increasing linearly to this value.
        grad_checkpointing (bool): Recompute each block in backward to save memory.
    """

    def __init__(self,
                 width: int,
                 layers: int,
                 heads: int,
                 mlp_ratio: float = 4.0,
                 act: str = 'gelu',
                 drop_path_rate: float = 0.0,
                 grad_checkpointing: bool = False) -> None:
        super().__init__()
        self.width = width
        self.grad_checkpointing = grad_checkpointing
        rates = torch.linspace(0, drop_path_rate, layers).tolist() if layers else []
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(width, heads, mlp_ratio, act, rate) for rate in rates)

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, L, C] -> [B, L, C]."""
        for block in self.resblocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, attn_mask, use_reentrant=False)
            else:
                x = block(x, attn_mask)
        return x
