import pytest
import torch
from mmdet.registry import MODELS
from mmengine.runner.checkpoint import load_checkpoint

from cllip_mm.mmdet_plugins import ClocViT
from cllip_mm.models.converters import convert_cllip_state_dict

# The tiny CLOC image encoder of configs/_base_/models/cloc_vit-tiny-p8.py.
TINY = dict(img_size=96, patch_size=8, width=128, layers=4, heads=4, embed_dim=128,
            patch_token_norm='none')


def test_simple_pyramid_strides_and_channels():
    vit = ClocViT(img_size=32, patch_size=16, width=64, layers=1, heads=4, embed_dim=16,
                  out_strides=(4, 8, 16, 32, 64)).eval()
    outs = vit(torch.randn(2, 3, 64, 128))
    # ViTDet: 2 deconvs (C/4), 1 deconv (C/2), identity, max pooling.
    assert vit.out_channels == (16, 32, 64, 64, 64)
    assert [tuple(o.shape) for o in outs] == [(2, 16, 16, 32), (2, 32, 8, 16), (2, 64, 4, 8),
                                              (2, 64, 2, 4), (2, 64, 1, 2)]
    patches = vit.patch_tokens(torch.zeros(1, 3, 64, 128))
    assert patches.shape == (1, 64, 4, 8)


def test_identity_level_is_the_patch_map():
    vit = ClocViT(**TINY, out_strides=(8, )).eval()
    x = torch.randn(1, 3, 64, 96)
    assert torch.equal(vit(x)[0], vit.patch_tokens(x))


def test_bad_strides_and_sizes_raise():
    with pytest.raises(ValueError, match='power of 2'):
        ClocViT(**TINY, out_strides=(12, ))
    vit = ClocViT(**TINY)
    with pytest.raises(ValueError, match='pad_size_divisor'):
        vit(torch.zeros(1, 3, 60, 64))


def test_frozen_stages_and_unused_projection():
    vit = ClocViT(**TINY, frozen_stages=2)
    vit.train()
    frozen = {n for n, p in vit.named_parameters() if not p.requires_grad}
    assert 'vit.conv1.weight' in frozen and 'vit.positional_embedding' in frozen
    assert any(n.startswith('vit.transformer.resblocks.1.') for n in frozen)
    assert not any(n.startswith('vit.transformer.resblocks.2.') for n in frozen)
    assert not vit.vit.transformer.resblocks[0].training
    assert vit.vit.transformer.resblocks[2].training
    # Only the class-token path uses proj / ln_post (patch_token_norm='none').
    assert {'vit.proj', 'vit.ln_post.weight', 'vit.ln_post.bias'} <= frozen
    # Every trainable parameter gets a gradient from the pyramid outputs.
    vit = ClocViT(**TINY, out_strides=(4, 8, 16))
    sum(o.sum() for o in vit(torch.randn(1, 3, 32, 32))).backward()
    missing = [n for n, p in vit.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


@pytest.mark.parametrize('img_size', [None, (128, 128)])
def test_converted_checkpoint_gives_the_cllip_patch_features(tiny_cloc, tmp_path, img_size,
                                                             mmdet_scope):
    """ClocViT loaded through init_cfg from a converted checkpoint == cllip_mm encoder."""
    state_dict, report = convert_cllip_state_dict(tiny_cloc.state_dict(), img_size=img_size)
    path = str(tmp_path / 'converted.pth')
    torch.save({'state_dict': state_dict, 'meta': {}}, path)
    det_size = img_size or (96, 96)
    backbone = MODELS.build(dict(
        type='ClocViT', **dict(TINY, img_size=det_size), out_strides=(4, 8, 16, 32),
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.')))
    backbone.init_weights()
    backbone.eval()
    assert backbone.vit.positional_embedding.shape[0] == 1 + (det_size[0] // 8)**2
    torch.manual_seed(1)
    # The detection input size (no run-time resize after a converter resize); with the
    # pretraining grid kept, any size works.
    sizes = [det_size] if img_size else [(96, 96), (128, 160)]
    for h, w in sizes:
        x = torch.randn(2, 3, h, w)
        with torch.no_grad():
            expected = tiny_cloc.image_encoder(x).patch_tokens
            actual = backbone.patch_tokens(x)
        assert actual.shape == expected.shape
        assert (actual - expected).abs().max() <= 1e-5


def test_load_resizes_a_pretraining_position_embedding(tiny_cloc, converted_checkpoint):
    backbone = ClocViT(**dict(TINY, img_size=128))
    load_checkpoint(backbone, converted_checkpoint, revise_keys=[(r'^backbone\.', '')])
    expected, _ = convert_cllip_state_dict(tiny_cloc.state_dict(), img_size=(128, 128))
    assert torch.allclose(backbone.vit.positional_embedding,
                          expected['backbone.vit.positional_embedding'])


def test_faster_rcnn_with_fpn_takes_the_pyramid(mmdet_scope):
    """mmdet's own Faster R-CNN + FPN config, with ClocViT as its backbone, trains."""
    import os.path as osp

    import mmdet
    from mmdet.structures import DetDataSample
    from mmengine import Config
    from mmengine.structures import InstanceData

    cfg = Config.fromfile(osp.join(osp.dirname(mmdet.__file__),
                                   '.mim/configs/_base_/models/faster-rcnn_r50_fpn.py')).model
    vit = dict(type='ClocViT', **TINY, out_strides=(4, 8, 16, 32))
    cfg.backbone = vit
    cfg.neck.in_channels = list(ClocViT(**TINY, out_strides=(4, 8, 16, 32)).out_channels)
    cfg.data_preprocessor.pad_size_divisor = 32
    cfg.roi_head.bbox_head.num_classes = 3
    model = MODELS.build(cfg)
    model.init_weights()
    sample = DetDataSample(metainfo=dict(img_shape=(64, 96), pad_shape=(64, 96),
                                         scale_factor=(1., 1.)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[4., 6., 40., 50.]]),
                                       labels=torch.tensor([1]))
    losses = model.loss(torch.randn(1, 3, 64, 96), [sample])
    total = sum(v if torch.is_tensor(v) else sum(v) for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert torch.isfinite(total)
    assert model.backbone.vit.transformer.resblocks[0].attn.in_proj_weight.grad is not None


def test_load_of_a_non_square_embedding_says_how_to_convert():
    """A checkpoint made for a non-square grid cannot be resized on load (its grid is not
    recorded); the error names the key and the converter option."""
    backbone = ClocViT(**TINY)
    state_dict = backbone.state_dict()
    state_dict['vit.positional_embedding'] = torch.zeros(1 + 12 * 16, 128)
    with pytest.raises(ValueError, match=r'vit\.positional_embedding: 192 grid positions.*--img-size'):
        backbone.load_state_dict(state_dict)
