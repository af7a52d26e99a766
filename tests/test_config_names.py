"""Config file names follow mmdet 3.x (``{algorithm}_{backbone}[_{pretrain}]_{N}xb{batch}-
{schedule}_{data}.py``) and say what the config does: N GPUs x ``batch`` per GPU is the
batch the LR was set for, the schedule is ``train_cfg.max_iters``."""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PRETRAIN_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'cl*', '*.py')))
#: ``_{N}xb{batch}-{schedule}_``: schedule in iterations, '600it' or '400k'.
TRAINING = re.compile(r'_(\d+)xb(\d+)-(\d+)(it|k)_')
#: The old ``_{N}x{batch}_`` spelling.
OLD_STYLE = re.compile(r'_\d+x\d+_')


def parse_training(name: str):
    """``(gpus, batch per GPU, iterations)`` of a config file name."""
    match = TRAINING.search(name)
    if match is None:
        raise ValueError(f'{name}: no _{{N}}xb{{batch}}-{{schedule}}_ part')
    gpus, batch, count, unit = match.groups()
    return int(gpus), int(batch), int(count) * (1000 if unit == 'k' else 1)


def test_parse_training():
    assert parse_training('cloc_vit-b16_128xb256-400k_region-text.py') == (128, 256, 400_000)
    assert parse_training('cloc_vit-tiny-p8_clip-pre_1xb64-200it_synthetic.py') == (1, 64, 200)
    with pytest.raises(ValueError, match='no _'):
        parse_training('cloc_vit-b16_128x256_400k_region-text.py')


@pytest.mark.parametrize('path', PRETRAIN_CONFIGS, ids=[osp.basename(p) for p in PRETRAIN_CONFIGS])
def test_pretraining_config_name_matches_its_content(path):
    name = osp.basename(path)
    # cloc / clip, or a named recipe of either (cloc-paper, cloc-paper-roi, ...)
    assert name.split('_')[0].split('-')[0] in ('cloc', 'clip')
    gpus, batch, iters = parse_training(name)
    cfg = Config.fromfile(path)
    assert cfg.train_dataloader.batch_size == batch
    assert cfg.auto_scale_lr.base_batch_size == gpus * batch
    assert cfg.train_cfg.max_iters == iters


def test_no_config_uses_the_old_names():
    paths = glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    assert paths
    assert [p for p in paths if OLD_STYLE.search(osp.basename(p))] == []
    downstream = [p for p in paths if '/downstream/' in p and '/_base_/' not in p]
    # Trained downstream configs name their schedule; zero-shot ones say 'zeroshot'.
    assert [p for p in downstream
            if not (TRAINING.search(osp.basename(p)) or '_zeroshot_' in osp.basename(p))
            and not re.search(r'_\d+xb\d+-\d+[ex]_', osp.basename(p))] == []
