# Copyright (c) cllip_mm contributors. All rights reserved.
"""The "continue from CLIP" config fits the weights the converter makes for it."""
import inspect
import os.path as osp

import torch
from mmengine.config import Config
from tiny_clip import REPO

from cllip_mm.models.backbones import VisionTransformer
from cllip_mm.models.converters import encoder_cfgs_from_hf_config, format_config, import_clip
from cllip_mm.models.text_encoders import TextTransformer

FROM_OPENAI = osp.join(REPO, 'configs', 'cloc', 'cloc_vit-b16_openai-clip-pre_8xb128-10k_region-text.py')


def openai_vit_b16_hf_config():
    """openai/clip-vit-base-patch16's config.json (defaults + patch 16, legacy eos id 2)."""
    from transformers import CLIPConfig
    return CLIPConfig(vision_config=dict(patch_size=16),
                      text_config=dict(eos_token_id=2, bos_token_id=0, pad_token_id=1))


def defaults(cls):
    return {k: p.default for k, p in inspect.signature(cls).parameters.items()
            if p.default is not inspect.Parameter.empty}


def test_from_openai_clip_config_matches_the_converted_architecture():
    cfg = Config.fromfile(FROM_OPENAI)
    derived = encoder_cfgs_from_hf_config(openai_vit_b16_hf_config().to_dict())
    for name, cls in (('image_encoder', VisionTransformer), ('text_encoder', TextTransformer)):
        configured = dict(defaults(cls), **cfg.model[name])
        for key, value in derived[name].items():
            assert configured[key] == value, (name, key)
    assert cfg.model.init_cfg.type == 'Pretrained'
    assert cfg.model.tokenizer.context_length == cfg.model.text_encoder.context_length


def test_from_openai_clip_config_loads_every_encoder_weight():
    from transformers import CLIPModel
    hf_config = openai_vit_b16_hf_config()
    with torch.device('meta'):  # shapes only: no memory, no init time
        hf = CLIPModel(hf_config)
    cfg = Config.fromfile(FROM_OPENAI)
    report = import_clip(hf.state_dict(), 'hf', hf_config=hf_config.to_dict(),
                         target_cfg=cfg.model.to_dict()).report
    assert not report.mismatched and not report.unused and report.ok
    assert not any(k.startswith(('image_encoder.', 'text_encoder.')) for k in report.new)
    assert 'clip_loss.logit_scale' in report.loaded
    assert {k.split('.')[0] for k in report.new} == {'prompter', 'grounding_head', 'region_loss'}


def test_format_config_round_trips(tmp_path):
    value = dict(model=dict(a=1, b=(32, 48), c=[1.5, None], d='x', e=dict(f=True), g=(1,)))
    path = tmp_path / 'c.py'
    path.write_text(format_config(value, header='line one\nline two'))
    assert path.read_text().startswith('# line one\n# line two\nmodel = dict(')
    cfg = Config.fromfile(str(path))
    assert cfg.model.to_dict() == dict(a=1, b=(32, 48), c=[1.5, None], d='x', e=dict(f=True), g=(1,))
