import math
import os.path as osp

import pytest
import torch

from cllip_mm.mmdet_plugins import ClocViT
from cllip_mm.models.converters import (
    check_against_model,
    convert_cllip_state_dict,
    converted_parts,
    load_cllip_state_dict,
)


def test_prefix_mapping_and_report(tiny_cloc):
    src = tiny_cloc.state_dict()
    out, report = convert_cllip_state_dict(src)
    assert torch.equal(out['backbone.vit.conv1.weight'], src['image_encoder.conv1.weight'])
    assert torch.equal(out['language_model.language_backbone.body.model.token_embedding.weight'],
                       src['text_encoder.token_embedding.weight'])
    assert torch.equal(out['prompter.proj.weight'], src['prompter.proj.weight'])
    assert out['logit_scale'] == min(src['region_loss.logit_scale'], math.log(100))
    parts = converted_parts(report)
    assert parts['backbone'] == sum(k.startswith('image_encoder.') for k in src)
    assert list(parts) == ['backbone', 'language_model', 'prompter', 'logit_scale']
    assert report.loaded == list(out)
    # Pretraining-only tensors are listed, not converted.
    assert {k.split('.')[0] for k in report.unused} == {'clip_loss', 'grounding_head'}
    assert report.ok and report.resized == {}
    text = report.summary()
    assert 'grounding_head.* (19)' in text and 'Result: OK' in text

    out, report = convert_cllip_state_dict(src, parts=['backbone'], img_size=(64, 128))
    assert set(k.split('.')[0] for k in out) == {'backbone'}
    assert out['backbone.vit.positional_embedding'].shape == (1 + 8 * 16, 128)
    assert report.resized == {'backbone.vit.positional_embedding': ((1 + 12 * 12, 128),
                                                                     (1 + 8 * 16, 128))}
    with pytest.raises(ValueError, match='multiple of the patch size'):
        convert_cllip_state_dict(src, img_size=(60, 64))
    with pytest.raises(ValueError, match='unknown parts'):
        convert_cllip_state_dict(src, parts=['neck'])


def test_check_against_model_flags_problems(tiny_cloc):
    out, report = convert_cllip_state_dict(tiny_cloc.state_dict(), parts=['backbone'])

    class Det(torch.nn.Module):
        def __init__(self, **kw):
            super().__init__()
            self.backbone = ClocViT(img_size=96, patch_size=8, width=128, layers=4, heads=4,
                                    embed_dim=128, **kw)
            self.neck = torch.nn.Linear(2, 2)

    report = check_against_model(out, Det(), report)
    assert report.ok and sorted(report.new) == [
        'backbone.pyramid.0.0.bias', 'backbone.pyramid.0.0.weight', 'neck.bias', 'neck.weight']
    # A deeper ViT misses blocks; a narrower one mismatches shapes.
    out2, report2 = convert_cllip_state_dict(tiny_cloc.state_dict(), parts=['backbone'])
    deeper = Det()
    deeper.backbone.vit.transformer.resblocks.append(
        type(deeper.backbone.vit.transformer.resblocks[0])(128, 4))
    report2 = check_against_model(out2, deeper, report2)
    assert not report2.ok
    assert any('resblocks.4' in k for k in report2.missing)
    out3, report3 = convert_cllip_state_dict(tiny_cloc.state_dict(), parts=['backbone'])
    out3['backbone.extra'] = torch.zeros(1)
    report3 = check_against_model(out3, Det(), report3)
    assert report3.unexpected == ['backbone.extra'] and not report3.ok


def test_tool_end_to_end(cloc_checkpoint, tmp_path, tiny_env, capsys, repo_root, load_tool):
    tool = load_tool('tools/model_converters/cllip_to_mmdet.py')
    dst = str(tmp_path / 'out.pth')
    config = osp.join(repo_root, 'configs/downstream/ov_coco/'
                      'grounding-dino_cloc-vit-tiny-p8_1xb2-4it_ov-synthetic.py')
    assert tool.main([cloc_checkpoint, dst, '--config', config, '--img-size', '128']) == 0
    assert 'interpolated by ClocViT when loaded' in capsys.readouterr().out
    assert tool.main([cloc_checkpoint, dst, '--config', config, '--cfg-options',
                      'model.backbone.img_size=128']) == 0
    printed = capsys.readouterr().out
    assert 'note:' not in printed and 'Result: OK' in printed
    assert 'unexpected     0' in printed
    assert 'backbone.vit.positional_embedding: [145, 128] -> [257, 128]' in printed
    ckpt = torch.load(dst, weights_only=True)
    # Only what Grounding DINO has: no prompter.
    assert {k.split('.')[0] for k in ckpt['state_dict']} == {'backbone', 'language_model'}
    assert ckpt['meta']['img_size'] == [128, 128]


def test_bad_checkpoints(tmp_path):
    path = str(tmp_path / 'bad.pth')
    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match='not a cllip_mm CLOC checkpoint'):
        load_cllip_state_dict(path)
    torch.save({'state_dict': {'module.image_encoder.conv1.weight': torch.zeros(1)}}, path)
    assert list(load_cllip_state_dict(path)) == ['image_encoder.conv1.weight']
