# Copyright (c) cllip_mm contributors. All rights reserved.
"""The mmdet plugins' init_weights (init_cfg Pretrained on a converted checkpoint) check
the checkpoint's meta['cllip_mm_arch']: a backbone or text tower built with another
activation (or tokenizer) than its weights need fails, naming the checkpoint, the key and
both values; a matching one loads; a checkpoint without the meta loads (with a warning)."""
import os.path as osp

import pytest
import torch

from cllip_mm.mmdet_plugins import ClocTextModel, ClocViT
from cllip_mm.models.converters import convert_cllip_state_dict
from cllip_mm.utils.weights_meta import META_KEY, WeightsMetaMismatch, model_weights_meta

VIT = dict(img_size=96, patch_size=8, width=128, layers=4, heads=4, embed_dim=128,
           patch_token_norm='none')  # configs/_base_/models/cloc_vit-tiny-p8.py
TEXT_ENCODER = dict(type='TextTransformer', context_length=40, width=128, layers=3, heads=4,
                    embed_dim=128)


@pytest.fixture(scope='module')
def quick_checkpoint(tiny_cloc, tmp_path_factory):
    """The tiny CLOC converted for the plugins, its meta saying: QuickGELU towers."""
    state_dict, _ = convert_cllip_state_dict(tiny_cloc.state_dict())
    meta = dict(model_weights_meta(tiny_cloc), vision_act='quick_gelu', text_act='quick_gelu')
    path = str(tmp_path_factory.mktemp('quick') / 'quick_mmdet.pth')
    torch.save({'state_dict': state_dict, 'meta': {META_KEY: meta}}, path)
    return path, state_dict


def pretrained(path, prefix):
    return dict(type='Pretrained', checkpoint=path, prefix=prefix)


def test_cloc_vit_init_checks_the_activation(quick_checkpoint, converted_checkpoint):
    path, state_dict = quick_checkpoint
    vit = ClocViT(**VIT, init_cfg=pretrained(path, 'backbone.'))  # GELU, the default
    with pytest.raises(WeightsMetaMismatch) as error:
        vit.init_weights()
    message = str(error.value)
    assert path in message and "'vision_act'] is 'quick_gelu'" in message
    assert "ClocViT (init_cfg Pretrained) has 'gelu'" in message
    assert 'model.backbone.act' in message
    vit = ClocViT(**VIT, act='quick_gelu', init_cfg=pretrained(path, 'backbone.'))
    vit.init_weights()
    assert torch.equal(vit.vit.conv1.weight, state_dict['backbone.vit.conv1.weight'])
    # no meta (the shared fixture): loads
    vit = ClocViT(**VIT, init_cfg=pretrained(converted_checkpoint, 'backbone.'))
    vit.init_weights()


def test_cloc_text_model_init_checks_activation_and_tokenizer(quick_checkpoint,
                                                              synthetic_root, tmp_path):
    path, state_dict = quick_checkpoint
    tokenizer = osp.join(synthetic_root, 'tokenizer')

    def text_model(checkpoint, **act):
        return ClocTextModel(tokenizer_path=tokenizer, text_encoder=dict(TEXT_ENCODER, **act),
                             init_cfg=pretrained(checkpoint, 'language_model.'))
    with pytest.raises(WeightsMetaMismatch, match="'text_act'] is 'quick_gelu'"):
        text_model(path).init_weights()
    model = text_model(path, act='quick_gelu')
    model.init_weights()
    key = 'language_model.language_backbone.body.model.token_embedding.weight'
    assert torch.equal(model.text_encoder.token_embedding.weight, state_dict[key])
    # another tokenizer than the weights were trained with
    ckpt = torch.load(path, map_location='cpu', weights_only=False)
    ckpt['meta'][META_KEY]['tokenizer_vocab'] = '999 tokens, sha256 0123456789abcdef'
    other = str(tmp_path / 'other_tokenizer.pth')
    torch.save(ckpt, other)
    with pytest.raises(WeightsMetaMismatch, match="'tokenizer_vocab'] is '999 tokens"):
        text_model(other, act='quick_gelu').init_weights()


def test_cllip_to_mmdet_carries_and_checks_the_meta(tiny_cloc, tmp_path, tiny_env, repo_root,
                                                     load_tool):
    """The converter copies meta['cllip_mm_arch'] into its output and, with --config,
    refuses a detector built with another activation than the weights need."""
    meta = dict(model_weights_meta(tiny_cloc), vision_act='quick_gelu', text_act='quick_gelu')
    src = str(tmp_path / 'quick_cloc.pth')
    torch.save({'state_dict': tiny_cloc.state_dict(), 'meta': {META_KEY: meta}}, src)
    tool = load_tool('tools/model_converters/cllip_to_mmdet.py')
    config = osp.join(repo_root, 'configs/downstream/ov_coco/'
                      'grounding-dino_cloc-vit-tiny-p8_1xb2-4it_ov-synthetic.py')  # GELU
    dst = str(tmp_path / 'out.pth')
    with pytest.raises(WeightsMetaMismatch) as error:
        tool.main([src, dst, '--config', config])
    message = str(error.value)
    assert src in message and config in message
    assert "'vision_act'] is 'quick_gelu'" in message and "'text_act'] is 'quick_gelu'" in message
    assert not osp.exists(dst)
    quick = ['model.backbone.act=quick_gelu', 'model.language_model.text_encoder.act=quick_gelu',
             'model.backbone.img_size=128']
    assert tool.main([src, dst, '--config', config, '--cfg-options', *quick]) == 0
    assert torch.load(dst, weights_only=True)['meta'][META_KEY] == meta
