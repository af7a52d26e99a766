import pytest
import torch.nn as nn
from mmengine.optim import build_optim_wrapper

from cllip_mm.mmdet_plugins import ClocViT, get_vit_layer_id


class Detector(nn.Module):
    def __init__(self, frozen_stages=0):
        super().__init__()
        self.backbone = ClocViT(img_size=32, patch_size=16, width=32, layers=3, heads=4,
                                embed_dim=16, out_strides=(8, 16), frozen_stages=frozen_stages)
        self.head = nn.Linear(32, 2)
        self.language_model = nn.Linear(4, 4)


def test_layer_ids():
    assert get_vit_layer_id('backbone.vit.conv1.weight', 12) == 0
    assert get_vit_layer_id('backbone.vit.ln_pre.bias', 12) == 0
    assert get_vit_layer_id('backbone.vit.transformer.resblocks.0.ln_1.weight', 12) == 1
    assert get_vit_layer_id('backbone.vit.transformer.resblocks.11.mlp.c_fc.bias', 12) == 12
    assert get_vit_layer_id('backbone.vit.ln_post.weight', 12) == 13
    assert get_vit_layer_id('backbone.pyramid.0.0.weight', 12) == 13
    assert get_vit_layer_id('bbox_head.fc.weight', 12) == 13


def build(paramwise_cfg, frozen_stages=0):
    model = Detector(frozen_stages)
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', constructor='ClocLayerDecayOptimWrapperConstructor',
        optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.1), paramwise_cfg=paramwise_cfg))
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(g['params'][0])]: g for g in wrapper.optimizer.param_groups}


def test_lr_decays_with_depth_and_composes_with_custom_keys():
    groups = build(dict(layer_decay_rate=0.5, custom_keys={
        'language_model': dict(lr_mult=0.1),
        'backbone.vit.positional_embedding': dict(decay_mult=0.)}))
    lr = {n: g['lr'] for n, g in groups.items()}
    # 3 blocks: block i (0-based) has scale 0.5 ** (3 - i), heads 1.
    assert lr['backbone.vit.transformer.resblocks.2.attn.in_proj_weight'] == pytest.approx(0.5)
    assert lr['backbone.vit.transformer.resblocks.0.attn.in_proj_weight'] == pytest.approx(0.125)
    assert lr['head.weight'] == pytest.approx(1.0)
    assert lr['language_model.weight'] == pytest.approx(0.1)
    # The stem is frozen (frozen_stages=0): not in the optimizer at all.
    assert not any(n.startswith(('backbone.vit.conv1', 'backbone.vit.ln_pre')) for n in lr)
    assert groups['backbone.vit.transformer.resblocks.2.attn.in_proj_weight']['lr_scale'] == 0.5


def test_stem_scale_and_weight_decay_rule():
    groups = build(dict(layer_decay_rate=0.5, num_layers=3,
                        custom_keys={'class_embedding': dict(decay_mult=0.)}), frozen_stages=-1)
    stem = groups['backbone.vit.class_embedding']
    assert stem['lr'] == pytest.approx(0.5**4)
    assert stem['weight_decay'] == 0.
    assert groups['backbone.vit.conv1.weight']['lr'] == pytest.approx(0.5**4)
    assert groups['backbone.pyramid.0.0.weight']['lr'] == pytest.approx(1.0)


def test_needs_a_rate():
    with pytest.raises(ValueError, match='layer_decay_rate'):
        build(dict(custom_keys={}))
    with pytest.raises(ValueError, match=r'\(0, 1\]'):
        build(dict(layer_decay_rate=1.5))
