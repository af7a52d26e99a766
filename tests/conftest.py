"""Shared fixtures: a tiny synthetic region-text set and a tiny CLOC config on it."""
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(REPO, 'configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py')


@pytest.fixture(scope='session')
def tiny_region_set(tmp_path_factory):
    """A seeded synthetic set (real JPEG files + JSON Lines + tokenizer.json)."""
    from cllip_mm.datasets.synthetic import generate_synthetic_regions
    root = str(tmp_path_factory.mktemp('tiny_region_set'))
    generate_synthetic_regions(root, num_train=48, num_val=16, seed=3, min_size=48, max_size=64)
    return root


def tiny_cloc_cfg(data_root: str, work_dir: str, max_iters: int = 4, clip_only: bool = False):
    """The demo config shrunk to seconds: 32 px, 1 block of width 32, batch 8."""
    from mmengine.config import Config
    cfg = Config.fromfile(DEMO_CONFIG)
    data_root = data_root.rstrip('/') + '/'
    cfg.work_dir = work_dir
    cfg.model.tokenizer.path = osp.join(data_root, 'tokenizer')
    cfg.model.image_encoder.update(img_size=32, width=32, layers=1, heads=2, embed_dim=16)
    cfg.model.text_encoder.update(width=32, layers=1, heads=2, embed_dim=16)
    cfg.model.prompter.update(width=32, embed_dim=16, heads=2)
    cfg.model.grounding_head.update(width=32, embed_dim=16)
    if clip_only:
        cfg.model.update(prompter=None, grounding_head=None, region_loss=None,
                         grounding_loss=None, region_embed_mode='crop')
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.update(batch_size=8, num_workers=0, persistent_workers=False)
        loader.dataset.data_root = data_root
    for pipeline in (cfg.train_dataloader.dataset.pipeline, cfg.val_dataloader.dataset.pipeline):
        for step in pipeline:
            if step['type'] == 'RandomResizedCropWithRegions':
                step['size'] = (32, 32)
            if step['type'] == 'Resize':
                step['scale'] = (32, 32)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.update(max_iters=max_iters, val_interval=max_iters)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)]
    cfg.default_hooks.checkpoint.update(interval=2, max_keep_ckpts=3)
    cfg.default_hooks.logger.interval = 1
    return cfg


@pytest.fixture
def make_tiny_cloc_cfg(tiny_region_set, tmp_path):
    def make(**kwargs):
        return tiny_cloc_cfg(tiny_region_set, str(tmp_path / 'work_dir'), **kwargs)
    return make


@pytest.fixture(scope='session')
def tiny_cloc_checkpoint(tiny_region_set, tmp_path_factory):
    """The tiny CLOC as a config file + an MMEngine checkpoint of random weights.

    Every parameter gets seeded noise on top of its initialisation, so that no
    zero-initialised layer makes outputs equal across boxes or texts.
    Returns (config path, checkpoint path).
    """
    import torch

    from cllip_mm.registry import MODELS
    from cllip_mm.utils import register_all_modules
    register_all_modules()
    work_dir = tmp_path_factory.mktemp('tiny_cloc_checkpoint')
    cfg = tiny_cloc_cfg(tiny_region_set, str(work_dir))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    cfg_path, ckpt_path = osp.join(work_dir, 'tiny_cloc.py'), osp.join(work_dir, 'tiny_cloc.pth')
    cfg.dump(cfg_path)
    # like MMEngine's CheckpointHook, the config travels in meta['cfg']
    torch.save({'state_dict': model.state_dict(), 'meta': {'cfg': cfg.pretty_text}}, ckpt_path)
    return cfg_path, ckpt_path


@pytest.fixture(scope='session')
def tiny_cloc_cfg_factory():
    """:func:`tiny_cloc_cfg` itself, for fixtures of a wider scope than ``tmp_path``
    (``from conftest import`` is ambiguous: other test folders have a conftest too)."""
    return tiny_cloc_cfg
