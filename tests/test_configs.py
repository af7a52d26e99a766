"""Every shipped config parses; the paper-scale ones build with the expected sizes."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from cllip_mm.registry import MODELS
from cllip_mm.utils import register_all_modules

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'c*', '*.py')))

register_all_modules()


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.basename(p) for p in CONFIGS])
def test_config_parses(path):
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'CLOC'
    is_clip = osp.basename(path).split('_')[0].split('-')[0] == 'clip'  # clip_, clip-paper_
    assert (cfg.model.get('prompter') is None) == is_clip
    assert cfg.train_cfg.max_iters > 0
    # the reliability hooks and a bounded collective timeout (docs/reliability.md)
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert 'SkipNonFiniteLossHook' in [h['type'] for h in cfg.get('custom_hooks', [])]
    assert 0 < cfg.env_cfg.dist_cfg.timeout <= 3600


def test_vit_b16_builds_with_clip_parameter_counts():
    cfg = Config.fromfile(osp.join(ROOT, 'configs/cloc/cloc_vit-b16_128xb256-400k_region-text.py'))
    image_encoder = MODELS.build(cfg.model.image_encoder)
    text_encoder = MODELS.build(dict(cfg.model.text_encoder, eot_token_id=None))
    # OpenAI's CLIP ViT-B/16: 86,192,640 (visual) + 63,428,096 (text) + 1 (logit scale).
    assert count(image_encoder) == 86_192_640
    assert count(text_encoder) == 63_428_096
    prompter = MODELS.build(cfg.model.prompter)
    head = MODELS.build(cfg.model.grounding_head)
    # The Prompter is light next to the encoder.
    assert count(prompter) + count(head) < 0.15 * count(image_encoder)  # ~ one ViT block
    assert cfg.train_dataloader.batch_size * 128 == 32768


def test_vit_l14_336_image_encoder_size():
    cfg = Config.fromfile(osp.join(ROOT, 'configs/cloc/cloc_vit-l14-336_256xb128-400k_region-text.py'))
    image_encoder = MODELS.build(cfg.model.image_encoder)
    # OpenAI's ViT-L/14@336px visual tower: 304,293,888 parameters.
    assert count(image_encoder) == 304_293_888
    assert image_encoder.grid_size == (24, 24)
    assert cfg.train_dataloader.batch_size * 256 == 32768


BENCHMARK_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'benchmarks', '*.py')))
TASK_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'benchmarks', '_base_', 'tasks', '*.py')))


@pytest.mark.parametrize('path', BENCHMARK_CONFIGS + TASK_CONFIGS,
                         ids=[osp.relpath(p, ROOT) for p in BENCHMARK_CONFIGS + TASK_CONFIGS])
def test_benchmark_config_parses(path):
    """Every benchmark config names registered components and valid model outputs."""
    from cllip_mm.datasets.class_names import get_templates
    from cllip_mm.models.multimodal.cloc import TEST_OUTPUTS
    from cllip_mm.registry import DATASETS, HOOKS, METRICS
    cfg = Config.fromfile(path)
    test_cfg = cfg.model.test_cfg if 'model' in cfg else cfg.model_test_cfg
    assert set(test_cfg['outputs']) <= set(TEST_OUTPUTS)
    get_templates(test_cfg.get('prompt_templates') or ['{}'])
    assert DATASETS.get(cfg.test_dataloader.dataset.type) is not None
    for metric in cfg.test_evaluator:
        assert METRICS.get(metric['type']) is not None
    assert all(HOOKS.get(h['type']) for h in cfg.get('custom_hooks', cfg.get('task_hooks')))
    if 'model' in cfg:
        assert cfg.model.type == 'CLOC'
        assert (cfg.model.get('prompter') is None) == osp.basename(path).startswith('clip_')


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.basename(p) for p in CONFIGS])
def test_pretraining_optimizer_is_fused_adamw(path):
    """Every pretraining config steps with fused AdamW (docs/performance.md)."""
    optimizer = Config.fromfile(path).optim_wrapper.optimizer
    assert optimizer.type == 'AdamW' and optimizer.get('fused') is True


def test_fused_adamw_from_the_demo_schedule_matches_foreach():
    """The schedule's fused AdamW, built through MMEngine with its paramwise groups, makes
    the same update as torch's default foreach AdamW."""
    import copy

    import torch
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(osp.join(ROOT, 'configs/_base_/schedules/schedule_1200it_adamw.py'))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.LayerNorm(32),
                                torch.nn.Linear(32, 4))
    twin, initial = copy.deepcopy(model), copy.deepcopy(model)
    foreach_cfg = copy.deepcopy(cfg.optim_wrapper)
    foreach_cfg.optimizer.fused = False
    wrappers = [build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper)),
                build_optim_wrapper(twin, foreach_cfg)]
    assert wrappers[0].optimizer.defaults['fused'] and not wrappers[1].optimizer.defaults['fused']
    x = torch.randn(8, 16)
    for _ in range(3):
        for net, wrapper in zip((model, twin), wrappers):
            wrapper.update_params(net(x).pow(2).mean())
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert (model[0].weight - initial[0].weight).abs().max() > 1e-3  # the steps did move it
