# Copyright (c) cllip_mm contributors. All rights reserved.
"""Tiny random CLOC / CLIP / paper-CLOC checkpoints (the demo configs shrunk, as
tests/conftest.py's ``tiny_cloc_checkpoint``) (the tiny LM config: mllm_test_config.py)."""
import os.path as osp

import pytest


def write_random_checkpoint(cfg, work_dir: str, name: str, seed: int = 0):
    """Build ``cfg.model`` with seeded noise on every weight; save config + checkpoint."""
    import torch

    from cllip_mm.registry import MODELS
    from cllip_mm.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    cfg_path, ckpt_path = osp.join(work_dir, f'{name}.py'), osp.join(work_dir, f'{name}.pth')
    cfg.dump(cfg_path)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt_path)
    return cfg_path, ckpt_path


@pytest.fixture(scope='session')
def tiny_clip_checkpoint(tiny_region_set, tiny_cloc_cfg_factory, tmp_path_factory):
    """The CLIP baseline of the tiny demo config (no Prompter): (config, checkpoint)."""
    work_dir = str(tmp_path_factory.mktemp('tiny_clip_checkpoint'))
    cfg = tiny_cloc_cfg_factory(tiny_region_set, work_dir, clip_only=True)
    return write_random_checkpoint(cfg, work_dir, 'tiny_clip')


@pytest.fixture(scope='session')
def tiny_paper_checkpoint(tiny_region_set, tiny_cloc_cfg_factory, tmp_path_factory):
    """The tiny config with the paper's Prompter (``ClocPrompter``): (config, checkpoint)."""
    work_dir = str(tmp_path_factory.mktemp('tiny_paper_checkpoint'))
    cfg = tiny_cloc_cfg_factory(tiny_region_set, work_dir)
    cfg.model.prompter = dict(type='ClocPrompter', width=32, embed_dim=16, heads=1)
    cfg.model.grounding_head = None
    cfg.model.grounding_loss = None
    return write_random_checkpoint(cfg, work_dir, 'tiny_paper')
