# Copyright (c) cllip_mm contributors. All rights reserved.
"""What the weights need besides their tensors (activations, tokenizer) travels in the
checkpoint's meta: read off a model, compared at load (mismatch: an error naming the
checkpoint, the key and both values; no meta: a warning); evaluation checks it."""
import pytest
import torch

import cllip_mm.utils.weights_meta as weights_meta
from cllip_mm.utils.checkpoint_check import check_checkpoint_for_evaluation
from cllip_mm.utils.weights_meta import (
    META_KEY,
    WeightsMetaMismatch,
    cfg_weights_meta,
    check_weights_meta,
    model_weights_meta,
    read_weights_meta,
)


def build(cfg):
    from cllip_mm.registry import MODELS
    from cllip_mm.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


@pytest.fixture
def tiny(tiny_cloc_cfg_factory, tiny_region_set, tmp_path):
    """A tiny CLOC config (GELU) and a QuickGELU variant of it."""
    def make(act='gelu'):
        cfg = tiny_cloc_cfg_factory(tiny_region_set, str(tmp_path / 'work'))
        cfg.model.image_encoder.act = act
        cfg.model.text_encoder.act = act
        return cfg
    return make


def save(model, path, meta):
    torch.save(dict(state_dict=model.state_dict(), meta=meta), path)
    return str(path)


@pytest.fixture
def warnings(monkeypatch):
    logs = []
    monkeypatch.setattr(weights_meta, 'print_log', lambda msg, **kw: logs.append(msg))
    return logs


def test_model_weights_meta_reads_the_built_model(tiny):
    gelu, quick = build(tiny('gelu')), build(tiny('quick_gelu'))
    meta = model_weights_meta(gelu)
    assert meta['vision_act'] == meta['text_act'] == 'gelu'
    assert meta['tokenizer_type'] == 'HFTokenizer'
    vocab = gelu.tokenizer.tokenizer.get_vocab()
    assert meta['tokenizer_vocab'].startswith(f'{len(vocab)} tokens, sha256 ')
    assert model_weights_meta(quick) == dict(meta, vision_act='quick_gelu', text_act='quick_gelu')
    # one tower at a time
    mixed = tiny('gelu')
    mixed.model.text_encoder.act = 'quick_gelu'
    assert model_weights_meta(build(mixed))['vision_act'] == 'gelu'
    assert model_weights_meta(build(mixed))['text_act'] == 'quick_gelu'
    # the config-level reading agrees (defaults included)
    assert cfg_weights_meta(tiny('quick_gelu').model) == dict(vision_act='quick_gelu',
                                                              text_act='quick_gelu')
    plain = tiny('gelu').model
    del plain.image_encoder['act'], plain.text_encoder['act']
    assert cfg_weights_meta(plain) == dict(vision_act='gelu', text_act='gelu')


def test_quick_gelu_checkpoint_under_a_gelu_config_fails(tiny, tmp_path, warnings):
    gelu, quick = build(tiny('gelu')), build(tiny('quick_gelu'))
    ckpt = save(quick, tmp_path / 'quick.pth', {META_KEY: model_weights_meta(quick)})
    with pytest.raises(WeightsMetaMismatch) as error:
        check_checkpoint_for_evaluation(gelu, ckpt, 'configs/x_gelu.py')
    message = str(error.value)
    # the checkpoint, the key, both values and where the model came from
    assert ckpt in message and 'configs/x_gelu.py' in message
    assert f"[{META_KEY!r}]['vision_act'] is 'quick_gelu'" in message
    assert f"[{META_KEY!r}]['text_act'] is 'quick_gelu'" in message
    assert "has 'gelu'" in message and 'model.image_encoder.act' in message
    # matching: passes, nothing logged
    check_checkpoint_for_evaluation(quick, ckpt, 'configs/x_quick.py')
    assert warnings == []


def test_another_tokenizer_fails(tiny, tmp_path):
    model = build(tiny())
    other = dict(model_weights_meta(model), tokenizer_vocab='49408 tokens, sha256 0123456789abcdef')
    ckpt = save(model, tmp_path / 'other_tok.pth', {META_KEY: other})
    with pytest.raises(WeightsMetaMismatch, match="'tokenizer_vocab'] is '49408 tokens"):
        check_weights_meta(model, ckpt)


def test_checkpoint_without_the_meta_warns(tiny, tmp_path, warnings):
    model = build(tiny())
    ckpt = save(model, tmp_path / 'old.pth', {'cfg': 'model = dict()'})
    assert read_weights_meta(ckpt) is None
    check_checkpoint_for_evaluation(model, ckpt, 'configs/x.py')  # no error
    assert len(warnings) == 1
    assert ckpt in warnings[0] and f'no meta[{META_KEY!r}]' in warnings[0]
    # a bare state dict too
    bare = tmp_path / 'bare.pth'
    torch.save(model.state_dict(), bare)
    check_weights_meta(model, str(bare))
    assert len(warnings) == 2 and str(bare) in warnings[1]


def test_keys_the_model_lacks_are_not_compared(tiny, tmp_path):
    """A checkpoint of both towers loads into a model of one (a detector backbone)."""
    from cllip_mm.models.backbones import VisionTransformer
    quick = build(tiny('quick_gelu'))
    ckpt = save(quick, tmp_path / 'quick.pth', {META_KEY: model_weights_meta(quick)})
    vit_cfg = dict(tiny('quick_gelu').model.image_encoder)
    vit_cfg.pop('type')
    check_weights_meta(VisionTransformer(**vit_cfg), ckpt)
    vit_cfg['act'] = 'gelu'
    with pytest.raises(WeightsMetaMismatch, match="'vision_act'] is 'quick_gelu'"):
        check_weights_meta(VisionTransformer(**vit_cfg), ckpt)
