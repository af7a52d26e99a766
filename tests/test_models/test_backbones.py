import pytest
import torch

from cllip_mm.models.backbones import VisionTransformer
from cllip_mm.models.layers import resize_pos_embed


def tiny_vit(**kwargs):
    cfg = dict(img_size=32, patch_size=8, width=32, layers=2, heads=4, embed_dim=16)
    cfg.update(kwargs)
    return VisionTransformer(**cfg)


def test_vit_output_shapes_and_grid_layout():
    vit = tiny_vit().eval()
    out = vit(torch.randn(2, 3, 32, 48))
    assert out.image_embed.shape == (2, 16)
    assert out.patch_tokens.shape == (2, 32, 4, 6)
    assert out.cls_token.shape == (2, 32)
    assert out.patch_embeds.shape == (2, 32, 4, 6)
    tokens, patch_embeds = vit.forward_tokens(torch.randn(1, 3, 32, 48))
    assert tokens.shape == (1, 1 + 4 * 6, 32)


def test_vit_patch_token_is_local_to_its_patch_without_blocks():
    # With no blocks, a patch token depends only on its own pixels: changing pixels of
    # patch (row 1, col 2) changes map[:, :, 1, 2] and nothing else.
    vit = tiny_vit(layers=0, patch_token_norm='none').eval()
    x = torch.randn(1, 3, 32, 32)
    y = x.clone()
    y[:, :, 8:16, 16:24] += 1.0
    diff = (vit(x).patch_tokens - vit(y).patch_tokens).abs().sum(1)[0]
    assert diff[1, 2] > 0
    diff[1, 2] = 0
    assert diff.max() == 0


def test_pos_embed_resize_identity_and_shape():
    pe = torch.randn(1 + 4 * 4, 8)
    assert torch.equal(resize_pos_embed(pe, (4, 4), (4, 4)), pe)
    out = resize_pos_embed(pe, (4, 4), (6, 2))
    assert out.shape == (1 + 12, 8)
    assert torch.equal(out[0], pe[0])
    with pytest.raises(ValueError, match='grid tokens'):
        resize_pos_embed(pe, (3, 3), (6, 2))


def test_frozen_stages():
    vit = tiny_vit(frozen_stages=1)
    vit.train()
    assert not vit.conv1.weight.requires_grad
    assert not vit.positional_embedding.requires_grad
    assert not any(p.requires_grad for p in vit.transformer.resblocks[0].parameters())
    assert all(p.requires_grad for p in vit.transformer.resblocks[1].parameters())
    assert not vit.transformer.resblocks[0].training


def test_grad_checkpointing_matches():
    torch.manual_seed(0)
    a = tiny_vit()
    b = tiny_vit(grad_checkpointing=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    a(x).image_embed.sum().backward()
    b(x).image_embed.sum().backward()
    torch.testing.assert_close(a.conv1.weight.grad, b.conv1.weight.grad)


def test_state_dict_uses_open_clip_names():
    keys = set(tiny_vit().state_dict())
    for key in ('conv1.weight', 'class_embedding', 'positional_embedding', 'ln_pre.weight',
                'transformer.resblocks.0.attn.in_proj_weight', 'transformer.resblocks.0.attn.out_proj.weight',
                'transformer.resblocks.0.mlp.c_fc.weight', 'ln_post.weight', 'proj'):
        assert key in keys
