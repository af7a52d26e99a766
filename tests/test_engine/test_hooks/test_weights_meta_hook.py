# Copyright (c) cllip_mm contributors. All rights reserved.
"""WeightsMetaHook (in configs/_base_/default_runtime.py's custom_hooks): training
checkpoints carry the model's activations and tokenizer in meta['cllip_mm_arch'], and a
run that starts from a checkpoint (load_from, or the model's init_cfg Pretrained, as a
CLOC continued from CLIP does) under a config of another activation fails."""
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner

from cllip_mm.utils.weights_meta import META_KEY, WeightsMetaMismatch, model_weights_meta


@pytest.mark.slow  # over ~30 s on 2 idle cores: out of the fast subset
def test_checkpoints_carry_the_meta_and_starts_are_checked(make_tiny_cloc_cfg, tmp_path):
    cfg = make_tiny_cloc_cfg(max_iters=2)
    assert 'WeightsMetaHook' in [h['type'] for h in cfg.custom_hooks]
    cfg.experiment_name = 'gelu'
    runner = Runner.from_cfg(cfg)
    runner.train()
    ckpt = osp.join(cfg.work_dir, 'iter_2.pth')
    saved = torch.load(ckpt, map_location='cpu', weights_only=False)['meta'][META_KEY]
    assert saved == model_weights_meta(runner.model)
    assert saved['vision_act'] == saved['text_act'] == 'gelu'

    def quick(name, **kwargs):
        cfg = make_tiny_cloc_cfg(max_iters=1)
        cfg.model.image_encoder.act = 'quick_gelu'
        cfg.update(work_dir=str(tmp_path / name), experiment_name=name, **kwargs)
        return cfg

    # load_from: checked when loaded
    with pytest.raises(WeightsMetaMismatch) as error:
        Runner.from_cfg(quick('load_from', load_from=ckpt)).train()
    assert ckpt in str(error.value)
    assert f"[{META_KEY!r}]['vision_act'] is 'gelu'" in str(error.value)
    assert "has 'quick_gelu'" in str(error.value)
    # init_cfg Pretrained: checked before the weights are initialised
    cfg = quick('init_cfg')
    cfg.model.init_cfg = dict(type='Pretrained', checkpoint=ckpt)
    with pytest.raises(WeightsMetaMismatch, match="'vision_act'] is 'gelu'"):
        Runner.from_cfg(cfg).train()
    assert not osp.exists(tmp_path / 'init_cfg' / 'iter_1.pth')
    # the same start under a matching config trains
    cfg = make_tiny_cloc_cfg(max_iters=1)
    cfg.update(work_dir=str(tmp_path / 'match'), experiment_name='match', load_from=ckpt)
    cfg.model.init_cfg = dict(type='Pretrained', checkpoint=ckpt)
    Runner.from_cfg(cfg).train()
    assert osp.exists(tmp_path / 'match' / 'iter_1.pth')
