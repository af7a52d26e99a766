# Copyright (c) cllip_mm contributors. All rights reserved.
import math
from typing import Tuple

import torch
import torch.nn.functional as F


def square_grid(pos_embed: torch.Tensor, num_extra_tokens: int = 1,
                name: str = 'position embedding') -> Tuple[int, int]:
    """The square patch grid (s, s) a ViT position embedding was made for.

    A state dict does not record the grid; only a square one can be read off the
    number of positions.

    Args:
        pos_embed (Tensor): [num_extra_tokens + s*s, C] (the class token's first).
        num_extra_tokens (int): Leading tokens that are not grid positions.
        name (str): What to call the embedding in the error (e.g. its state-dict key).

    Returns:
        tuple: (s, s).

    Raises:
        ValueError: The number of grid positions is not a square.
    """
    num_positions = pos_embed.shape[0] - num_extra_tokens
    side = math.isqrt(max(num_positions, 0))
    if num_positions <= 0 or side * side != num_positions:
        raise ValueError(f'{name}: {num_positions} grid positions is not a square grid, so the '
                         'patch grid cannot be inferred')
    return side, side


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
