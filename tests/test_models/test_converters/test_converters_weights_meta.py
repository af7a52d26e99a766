# Copyright (c) cllip_mm contributors. All rights reserved.
"""The converters carry what the weights need (activations, tokenizer) in
meta['cllip_mm_arch'] and check it: OpenAI-style (QuickGELU) weights under a GELU config
fail naming the checkpoint, the key and both values."""
import json
import os.path as osp

import pytest
import torch
from tiny_clip import EOT_ID, load_tool, save_hf_clip, tiny_hf_clip

from cllip_mm.models.tokenizers import HFTokenizer
from cllip_mm.utils.weights_meta import META_KEY, WeightsMetaMismatch, tokenizer_identity


@pytest.fixture(scope='module')
def quick_clip(tmp_path_factory, clip_tokenizer_dir):
    """A QuickGELU HF CLIP (with its tokenizer) converted by clip_to_cllip, the config
    snippet it printed, and CLOC configs on it with the right and the wrong activation."""
    tmp = tmp_path_factory.mktemp('quick_clip')
    src = save_hf_clip(tiny_hf_clip('quick_gelu', EOT_ID), tmp / 'hf', clip_tokenizer_dir)
    out, snippet = tmp / 'clip.pth', tmp / 'clip_model.py'
    load_tool('clip_to_cllip').main([src, str(out), '--src-format', 'hf',
                                     '--cfg-out', str(snippet)])
    cloc = ("model = dict(type='CLOC', clip_loss=dict(type='ClipContrastiveLoss'),\n"
            "             region_loss=dict(type='RegionTextContrastiveLoss'),\n"
            "             grounding_loss=dict(type='GroundingLoss'){})\n")
    right, wrong = tmp / 'cloc_quick.py', tmp / 'cloc_gelu.py'
    right.write_text(f"_base_ = ['{snippet.name}']\n" + cloc.format(''))
    wrong.write_text(f"_base_ = ['{snippet.name}']\n" + cloc.format(
        ",\n             image_encoder=dict(act='gelu')"))
    return dict(src=src, out=str(out), right=str(right), wrong=str(wrong), tmp=tmp,
                tokenizer=str(tmp / 'clip_tokenizer'))


def test_clip_to_cllip_records_activation_and_tokenizer(quick_clip):
    meta = torch.load(quick_clip['out'], map_location='cpu', weights_only=True)['meta']
    tokenizer = tokenizer_identity(HFTokenizer(quick_clip['tokenizer']))
    assert meta[META_KEY] == dict(vision_act='quick_gelu', text_act='quick_gelu', **tokenizer)


def test_clip_to_cllip_checks_the_config(quick_clip):
    tool = load_tool('clip_to_cllip')
    with pytest.raises(WeightsMetaMismatch) as error:
        tool.main([quick_clip['src'], str(quick_clip['tmp'] / 'o.pth'), '--src-format', 'hf',
                   '--config', quick_clip['wrong']])
    message = str(error.value)
    assert quick_clip['src'] in message and quick_clip['wrong'] in message
    assert "'vision_act'] is 'quick_gelu'" in message and "has 'gelu'" in message
    assert "'text_act'" not in message  # the text tower matches
    assert not osp.exists(quick_clip['tmp'] / 'o.pth')
    assert tool.main([quick_clip['src'], str(quick_clip['tmp'] / 'ok.pth'), '--src-format',
                      'hf', '--config', quick_clip['right']]) == 0


def test_cllip_to_hf_checks_the_config(quick_clip, tmp_path):
    tool = load_tool('cllip_to_hf')
    with pytest.raises(WeightsMetaMismatch) as error:
        tool.main([quick_clip['wrong'], quick_clip['out'], str(tmp_path / 'wrong')])
    assert quick_clip['out'] in str(error.value)
    assert "'vision_act'] is 'quick_gelu'" in str(error.value)
    assert not osp.exists(tmp_path / 'wrong' / 'config.json')
    assert tool.main([quick_clip['right'], quick_clip['out'], str(tmp_path / 'right')]) == 0
    with open(tmp_path / 'right' / 'config.json') as f:
        config = json.load(f)
    assert config['vision_config']['hidden_act'] == 'quick_gelu'
