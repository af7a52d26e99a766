# Copyright (c) cllip_mm contributors. All rights reserved.
"""resize_pos_embed to non-square grids, against a separable bicubic written here."""
import math

import pytest
import torch

from cllip_mm.models import resize_pos_embed


def cubic_weights(src_size: int, dst_size: int, a: float = -0.75) -> torch.Tensor:
    """[dst, src] matrix of 1-D bicubic interpolation (Keys kernel, ``a=-0.75``) with
    half-pixel centres (``align_corners=False``) and edge replication: what CLIP / timm
    resizing computes along one axis."""

    def kernel(x):
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        if x < 2:
            return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
        return 0.0

    weights = torch.zeros(dst_size, src_size, dtype=torch.float64)
    scale = src_size / dst_size
    for i in range(dst_size):
        x = (i + 0.5) * scale - 0.5
        base = math.floor(x)
        for k in range(base - 1, base + 3):
            weights[i, min(max(k, 0), src_size - 1)] += kernel(x - k)
    return weights


def reference(pos_embed, src_grid, dst_grid, num_extra_tokens=1):
    """Row-major grid tokens: out[(i, j)] = sum_{p, q} Wh[i, p] Ww[j, q] in[(p, q)]."""
    (hs, ws), (hd, wd) = src_grid, dst_grid
    grid = pos_embed[num_extra_tokens:].double().reshape(hs, ws, -1)
    out = torch.einsum('ip,jq,pqc->ijc', cubic_weights(hs, hd), cubic_weights(ws, wd), grid)
    return torch.cat([pos_embed[:num_extra_tokens].double(), out.reshape(hd * wd, -1)])


@pytest.mark.parametrize('src_grid,dst_grid', [((4, 4), (6, 3)), ((3, 5), (5, 3)),
                                               ((2, 7), (4, 4)), ((5, 3), (5, 6))])
def test_non_square_resize_matches_separable_bicubic(src_grid, dst_grid):
    torch.manual_seed(0)
    pos_embed = torch.randn(1 + src_grid[0] * src_grid[1], 8)
    out = resize_pos_embed(pos_embed, src_grid, dst_grid)
    assert out.shape == (1 + dst_grid[0] * dst_grid[1], 8)
    torch.testing.assert_close(out, reference(pos_embed, src_grid, dst_grid).float())


def test_rows_stay_rows():
    """An embedding that only varies down the rows still does so after the resize
    (h and w swapped would make it vary across the columns)."""
    hs, ws, hd, wd = 3, 5, 6, 2
    rows = torch.arange(hs, dtype=torch.float32)[:, None].expand(hs, ws)
    pos_embed = torch.cat([torch.full((1, 1), -1.0), rows.reshape(-1, 1)])
    out = resize_pos_embed(pos_embed, (hs, ws), (hd, wd))
    grid = out[1:, 0].reshape(hd, wd)
    assert out[0, 0] == -1.0
    torch.testing.assert_close(grid, grid[:, :1].expand(hd, wd))  # constant along w
    assert (grid[1:, 0] >= grid[:-1, 0]).all() and grid[-1, 0] > grid[0, 0]


def test_two_extra_tokens_are_copied():
    torch.manual_seed(0)
    pos_embed = torch.randn(2 + 2 * 3, 4)
    out = resize_pos_embed(pos_embed, (2, 3), (3, 2), num_extra_tokens=2)
    expected = reference(pos_embed, (2, 3), (3, 2), num_extra_tokens=2).float()
    torch.testing.assert_close(out, expected)
