"""The downstream configs: they parse, their models fit together, and mmdet's own
tools/train.py and tools/test.py run the tiny variants from a converted checkpoint."""
import glob
import inspect
import os.path as osp
import runpy
import sys

import mmdet
import pytest
import torch
from mmengine import Config
from mmengine.logging import MessageHub
from mmengine.registry import DefaultScope
from mmengine.visualization import Visualizer

MMDET_TOOLS = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools')
CONFIGS = dict(
    ov='configs/downstream/ov_coco/grounding-dino_cloc-vit-b16_16xb4-1x_ov-coco-48-17.py',
    ov_tiny='configs/downstream/ov_coco/grounding-dino_cloc-vit-tiny-p8_1xb2-4it_ov-synthetic.py',
    refcoco='configs/downstream/refcoco/grounding-dino_cloc-vit-b16_8xb4-5e_refcoco.py',
    refcoco_plus='configs/downstream/refcoco/grounding-dino_cloc-vit-b16_8xb4-5e_refcoco-plus.py',
    refcocog='configs/downstream/refcoco/grounding-dino_cloc-vit-b16_8xb4-5e_refcocog.py',
    refexp_tiny='configs/downstream/refcoco/grounding-dino_cloc-vit-tiny-p8_1xb2-4it_refexp-synthetic.py',
    zeroshot='configs/downstream/ov_region_cls/cloc-prompter_vit-b16_zeroshot_ov-coco-48-17-proposals.py',
    zeroshot_tiny='configs/downstream/ov_region_cls/cloc-prompter_vit-tiny-p8_zeroshot_ov-synthetic.py',
    det='configs/downstream/coco_det/faster-rcnn_cloc-vit-b16_fpn_8xb2-1x_coco.py',
    det_tiny='configs/downstream/coco_det/faster-rcnn_cloc-vit-tiny-p8_fpn_1xb2-4it_synthetic.py',
)


def test_every_downstream_config_is_listed(repo_root):
    found = {osp.relpath(p, repo_root)
             for p in glob.glob(osp.join(repo_root, 'configs/downstream/*/*.py'))}
    assert found - {p for p in found if '/_base_/' in p} == set(CONFIGS.values())


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_configs_inherit_mmdet_and_use_the_plugins(name, repo_root):
    cfg = Config.fromfile(osp.join(repo_root, CONFIGS[name]))
    assert cfg.custom_imports.imports == ['cllip_mm.mmdet_plugins']
    assert cfg.default_scope == 'mmdet'  # from mmdet's own base config
    assert cfg.load_from is None
    if name.startswith('zeroshot'):
        assert cfg.model.type == 'ClocRegionClassifier'
        assert cfg.test_evaluator.type == 'OVCocoMetric'
        assert cfg.train_dataloader is None
        return
    if name.startswith('det'):  # closed set: the ViT + simple pyramid under FPN
        assert cfg.model.type == 'FasterRCNN' and cfg.model.backbone.type == 'ClocViT'
        assert cfg.model.backbone.out_strides == (4, 8, 16, 32)
        init = cfg.model.backbone.init_cfg
        assert init.type == 'Pretrained' and init.prefix == 'backbone.'
        assert cfg.optim_wrapper.constructor == 'ClocLayerDecayOptimWrapperConstructor'
        assert cfg.test_evaluator.type == 'CocoMetric'
        return
    assert cfg.model.type == 'GroundingDINO'
    assert cfg.model.backbone.type == 'ClocViT'
    assert cfg.model.language_model.type == 'ClocTextModel'
    for key in ('backbone', 'language_model'):
        init = cfg.model[key].init_cfg
        assert init.type == 'Pretrained' and init.prefix == key + '.'
    assert cfg.optim_wrapper.constructor == 'ClocLayerDecayOptimWrapperConstructor'
    evaluator = cfg.test_evaluator
    if name.startswith('ov'):
        assert evaluator.type == 'OVCocoMetric'
        meta = cfg.test_dataloader.dataset.metainfo
        assert set(meta.base_classes) | set(meta.novel_classes) == set(meta.classes)
        assert len(meta.novel_classes) == (17 if name == 'ov' else 8)
    else:
        types = [m.type for m in evaluator.get('metrics', [evaluator])]
        assert set(types) == {'RefExpMetric'}


@pytest.mark.parametrize('name,pretrain', [
    ('zeroshot', 'configs/_base_/models/cloc_vit-b16.py'),
    ('zeroshot_tiny', 'configs/_base_/models/cloc_vit-tiny-p8.py')])
def test_encoders_match_the_pretraining_configs(name, pretrain, repo_root):
    """The downstream encoders and Prompter have the pretraining model's shapes."""
    from cllip_mm.models import TextTransformer, VisionTransformer

    def effective(cfg, cls):
        args = {k: p.default for k, p in inspect.signature(cls).parameters.items()}
        args.update({k: v for k, v in cfg.items() if k != 'type'})
        return args

    model = Config.fromfile(osp.join(repo_root, CONFIGS[name])).model
    cloc = Config.fromfile(osp.join(repo_root, pretrain)).model
    vit = effective(model.backbone, VisionTransformer)
    for key, value in effective(cloc.image_encoder, VisionTransformer).items():
        if key not in ('frozen_stages', 'grad_checkpointing', 'drop_path_rate', 'init_cfg'):
            assert vit[key] == value, key
    text = effective(model.language_model.text_encoder, TextTransformer)
    for key, value in effective(cloc.text_encoder, TextTransformer).items():
        if key not in ('vocab_size', 'eot_token_id', 'grad_checkpointing'):  # from the tokenizer
            assert text[key] == value, key
    assert model.prompter == cloc.prompter


def test_full_size_grounding_dino_fits_together(repo_root, synthetic_root):
    """ViT-B/16 pyramid channels = ChannelMapper inputs; widths match the text side."""
    from mmdet.registry import MODELS
    cfg = Config.fromfile(osp.join(repo_root, CONFIGS['ov']))
    cfg.model.language_model.tokenizer_path = osp.join(synthetic_root, 'tokenizer')
    cfg.model.backbone.init_cfg = cfg.model.language_model.init_cfg = None
    cfg.model.encoder.num_cp = 0  # mmdet's encoder checkpointing needs fairscale
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    assert list(model.backbone.out_channels) == list(cfg.model.neck.in_channels)
    assert model.text_feat_map.in_features == 512
    assert model.backbone.vit.num_layers == 12


def run_mmdet_tool(tool, args, work_dir):
    """Run mmdet's tools/{train,test}.py in this process; return its log text."""
    argv, threads = sys.argv, torch.get_num_threads()
    # The runner makes its scope / message hub / visualizer the current ones: restore
    # them so that later tests still build in their own scope.
    managers = (DefaultScope, MessageHub, Visualizer)
    instances = [dict(m._instance_dict) for m in managers]
    sys.argv = [tool] + args + ['--work-dir', work_dir]
    # One thread: tiny ops gain nothing from more, and on a busy machine OpenMP's
    # synchronisation between threads can make each iteration 50x slower.
    torch.set_num_threads(1)
    try:
        runpy.run_path(osp.join(MMDET_TOOLS, tool), run_name='__main__')
    finally:
        sys.argv = argv
        torch.set_num_threads(threads)
        for manager, saved in zip(managers, instances):
            manager._instance_dict.clear()
            manager._instance_dict.update(saved)
    logs = sorted(glob.glob(osp.join(work_dir, '*', '*.log')), key=osp.getmtime)
    with open(logs[-1]) as f:
        return f.read()


def logged_metrics(log, names):
    """The last value logged for each of ``names`` (``name: value`` in mmengine's log)."""
    import re
    values = {}
    for name in names:
        found = re.findall(re.escape(name) + r':\s*(\S+)', log)
        assert found, f'{name} not in the log'
        values[name] = float(found[-1])
    return values


def assert_scores(log, names):
    """Each metric is logged as a number in [0, 1]: a NaN or a -1 ('no ground truth'
    in COCO's evaluation) fails, where a test on the names alone passes."""
    for name, value in logged_metrics(log, names).items():
        assert 0.0 <= value <= 1.0, (name, value)


@pytest.mark.slow
def test_mmdet_tools_run_the_tiny_configs(repo_root, tiny_env, converted_checkpoint, tmp_path):
    """train.py (2 iterations + validation) then test.py, from the converted checkpoint."""
    scope = DefaultScope.get_current_instance()
    few = ['--cfg-options', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
           'default_hooks.checkpoint.interval=2', 'param_scheduler.0.end=2']
    ov = osp.join(repo_root, CONFIGS['ov_tiny'])
    log = run_mmdet_tool('train.py', [ov] + few, str(tmp_path / 'ov'))
    assert 'load backbone. in model from: ' + converted_checkpoint in log
    assert 'load language_model. in model from: ' + converted_checkpoint in log
    assert 'Iter(train) [2/2]' in log
    assert_scores(log, ('coco/novel_ap50', 'coco/base_ap50', 'coco/bbox_mAP'))
    log = run_mmdet_tool('test.py', [ov, str(tmp_path / 'ov' / 'iter_2.pth')],
                         str(tmp_path / 'ov_test'))
    assert 'Iter(test)' in log
    assert_scores(log, ('coco/novel_ap50', 'coco/base_ap50'))

    log = run_mmdet_tool('train.py', [osp.join(repo_root, CONFIGS['refexp_tiny'])] + few +
                         ['val_dataloader.dataset.indices=4'], str(tmp_path / 'refexp'))
    assert 'Iter(train) [2/2]' in log
    assert_scores(log, ('refexp/refcoco_precision@1', ))

    log = run_mmdet_tool('test.py', [osp.join(repo_root, CONFIGS['zeroshot_tiny']),
                                     converted_checkpoint], str(tmp_path / 'zeroshot'))
    assert_scores(log, ('coco/novel_ap50', 'coco/base_ap50'))
    assert DefaultScope.get_current_instance() is scope
