"""The one reader of a position embedding's patch grid (converters and ClocViT use it)."""
import pytest
import torch

from cllip_mm.models.layers import square_grid


@pytest.mark.parametrize('side', [1, 3, 14])
def test_square_grid_reads_the_side(side):
    assert square_grid(torch.zeros(1 + side * side, 8)) == (side, side)
    assert square_grid(torch.zeros(side * side, 8), num_extra_tokens=0) == (side, side)


@pytest.mark.parametrize('positions', [0, 1 + 2 * 3, 1 + 15])
def test_square_grid_names_the_embedding_when_not_square(positions):
    with pytest.raises(ValueError, match=r'backbone\.vit\.positional_embedding: -?\d+ grid positions'):
        square_grid(torch.zeros(positions, 8), name='backbone.vit.positional_embedding')
