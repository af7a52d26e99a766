"""The shipped VESL configs parse, name registered stages and keep the paper's
settings; the training config of docs/vesl.md turns validation off."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from cllip_mm.registry import VESL_STAGES

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'vesl', '*.py')))


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.basename(p) for p in CONFIGS])
def test_vesl_config(path):
    cfg = Config.fromfile(path)
    for stage in [cfg.captioner, cfg.phrase_extractor, cfg.detector, *cfg.filters]:
        assert VESL_STAGES.get(stage['type']) is not None, stage['type']
    assert cfg.phrase_extractor.max_phrases == 20
    # the paper's confidence 0.1: a filter, or the detector's own threshold
    assert (dict(type='ScoreThreshold', score_thr=0.1) in cfg.filters
            or cfg.detector.get('score_thr') == 0.1)
    assert cfg.detector.model_path.startswith('checkpoints/vesl/owlv2-')
    assert cfg.batch_size >= 1 and cfg.shard_size >= 1


def test_training_config_from_the_docs(tmp_path):
    cfg_file = tmp_path / 'cloc_vit-b16_my-vesl.py'
    base = osp.join(ROOT, 'configs/cloc/cloc_vit-b16_128xb256-400k_region-text.py')
    cfg_file.write_text(
        f"_base_ = ['{base}']\n"
        "train_dataloader = dict(dataset=dict(data_root='data/my_vesl/', "
        "ann_file='annotations.jsonl', filter_cfg=dict(filter_empty_gt=True)))\n"
        'val_dataloader = val_cfg = val_evaluator = None\n'
        'test_dataloader = test_cfg = test_evaluator = None\n')
    cfg = Config.fromfile(str(cfg_file))
    assert cfg.train_dataloader.dataset.ann_file == 'annotations.jsonl'
    assert cfg.train_dataloader.dataset.filter_cfg == dict(filter_empty_gt=True)
    assert cfg.val_dataloader is None and cfg.val_cfg is None and cfg.test_evaluator is None
