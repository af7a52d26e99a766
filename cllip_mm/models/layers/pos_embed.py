# Copyright (c) cllip_mm contributors. All rights reserved.
from typing import Tuple

import torch
import torch.nn.functional as F


def resize_pos_embed(pos_embed: torch.Tensor,
                     src_grid: Tuple[int, int],
                     dst_grid: Tuple[int, int],
                     num_extra_tokens: int = 1,
                     mode: str = 'bicubic') -> torch.Tensor:
    """Resize a ViT's absolute position embedding to another patch grid.

    Args:
        pos_embed (Tensor): [num_extra_tokens + Hs*Ws, C] (the class token's first).
        src_grid (tuple): (Hs, Ws), the grid the embedding was trained for.
        dst_grid (tuple): (Hd, Wd), the grid wanted.
        num_extra_tokens (int): Leading tokens that are copied, not interpolated.
        mode (str): Interpolation mode, bicubic as in CLIP / timm.

    Returns:
        Tensor: [num_extra_tokens + Hd*Wd, C].
    """
    src_grid, dst_grid = tuple(src_grid), tuple(dst_grid)
    if src_grid == dst_grid:
        return pos_embed
    extra, grid = pos_embed[:num_extra_tokens], pos_embed[num_extra_tokens:]
    if grid.shape[0] != src_grid[0] * src_grid[1]:
        raise ValueError(f'pos_embed has {grid.shape[0]} grid tokens, '
                         f'expected {src_grid[0]}x{src_grid[1]}')
    grid = grid.reshape(1, *src_grid, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=dst_grid, mode=mode, align_corners=False)
    grid = grid.to(pos_embed.dtype).permute(0, 2, 3, 1).flatten(0, 2)
    return torch.cat([extra, grid], dim=0)
