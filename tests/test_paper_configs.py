"""The paper-scale configs of the paper's recipe: every Table A value, read back from a dumped
config, and one training step of each on CPU with random weights on tiny data."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from cllip_mm.registry import DATASETS, MODELS
from cllip_mm.utils import register_all_modules

register_all_modules()
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PAPER_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'cl*', 'cl*-paper_vit-*-439087it_*.py')))
#: (image size, patch, width, layers, GPUs x batch per GPU) of each architecture.
ARCH = {'vit-b16': (224, 16, 768, 12, 128, 256), 'vit-l14-336': (336, 14, 1024, 24, 256, 128)}


def arch_of(path):
    return osp.basename(path).split('_')[1]


def steps(pipeline):
    return [step['type'] for step in pipeline]


def test_all_four_paper_configs_exist():
    assert sorted(osp.basename(p) for p in PAPER_CONFIGS) == [
        'clip-paper_vit-b16_128xb256-439087it_region-text.py',
        'clip-paper_vit-l14-336_256xb128-439087it_region-text.py',
        'cloc-paper_vit-b16_128xb256-439087it_region-text.py',
        'cloc-paper_vit-l14-336_256xb128-439087it_region-text.py',
    ]


@pytest.mark.parametrize('path', PAPER_CONFIGS, ids=osp.basename)
def test_dumped_config_has_table_a_values(path, tmp_path):
    dumped = tmp_path / 'dumped.py'
    Config.fromfile(path).dump(str(dumped))
    cfg = Config.fromfile(str(dumped))
    size, patch, width, layers, gpus, per_gpu = ARCH[arch_of(path)]
    # batch 32,768; 439,087 steps; AdamW (0.9, 0.98); LR 5e-4 cosine after 2k warm-up; wd 0.2
    assert gpus * per_gpu == 32768 == cfg.auto_scale_lr.base_batch_size
    assert cfg.train_dataloader.batch_size == per_gpu
    assert cfg.train_cfg.max_iters == 439_087
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, tuple(optimizer.betas), optimizer.lr, optimizer.weight_decay) == \
        ('AdamW', (0.9, 0.98), 5e-4, 0.2)
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.begin, warmup.end) == ('LinearLR', 0, 2000)
    assert (cosine.type, cosine.begin, cosine.end) == ('CosineAnnealingLR', 2000, 439_087)
    # towers from scratch, dropout 0; the size of the architecture
    model = cfg.model
    encoder = model.image_encoder
    assert (encoder.img_size, encoder.patch_size, encoder.width, encoder.layers) == \
        (size, patch, width, layers)
    assert encoder.drop_path_rate == 0.0 and 'init_cfg' not in model
    # T5 tokenizer, lower-cased, 77 tokens
    assert (model.tokenizer.type, model.tokenizer.lowercase, model.tokenizer.context_length) == \
        ('SentencePieceTokenizer', True, 77)
    assert model.text_encoder.context_length == 77
    # resize with (centred) padding, no other augmentation; M = 4
    assert steps(cfg.train_dataloader.dataset.pipeline) == [
        'LoadImageFromFileChecked', 'ResizeWithPad', 'SampleRegions', 'PackRegionTextInputs']
    resize, sample = cfg.train_dataloader.dataset.pipeline[1:3]
    assert tuple(resize.size) == (size, size) and sample.max_regions == 4
    assert 'ResizeWithPad' in steps(cfg.val_dataloader.dataset.pipeline)
    if osp.basename(path).startswith('clip'):
        assert model.prompter is None and model.region_loss is None and model.grounding_head is None
        return
    # the Prompter: one single-head layer of the ViT's width, corners as 2 tokens
    assert (model.prompter.type, model.prompter.width, model.prompter.heads,
            model.prompter.corner_tokens) == ('ClocPrompter', width, 1, 2)
    assert model.grounding_head.type == 'ClocGroundingHead' and model.grounding_loss is None
    assert model.region_loss.text_filter_threshold == 0.9
    assert model.region_loss_weighting == 'image_fraction'


def tiny_data(cfg, tiny_region_set):
    """``cfg``'s training set on the tiny synthetic set (its pipeline, its layout)."""
    data = cfg.train_dataloader.dataset
    data.update(data_root=tiny_region_set.rstrip('/') + '/', ann_file='annotations/train.jsonl')
    return DATASETS.build(data)


@pytest.mark.parametrize('path', [
    p if 'vit-b16' in p else pytest.param(p, marks=pytest.mark.slow)  # L/14: ~35 s
    for p in PAPER_CONFIGS if 'vit-b16' in p or 'cloc-paper_vit-l14' in osp.basename(p)],
    ids=osp.basename)
def test_paper_config_builds_and_trains_one_step(path, tiny_region_set):
    cfg = Config.fromfile(path)
    # the T5-style tokenizer the synthetic generator trains on its corpus
    cfg.model.tokenizer.path = osp.join(tiny_region_set, 'tokenizer_t5')
    cfg.model.image_encoder.grad_checkpointing = False  # same maths, faster on CPU
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    dataset = tiny_data(cfg, tiny_region_set)
    data = pseudo_collate([dataset[i] for i in range(2)])
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    losses = model(**model.data_preprocessor(data, True), mode='loss')
    expected = {'loss_clip'} | ({'loss_region', 'loss_ground'} if cfg.model.prompter else set())
    assert expected <= set(losses)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    optim.step()
    inputs = model.data_preprocessor(data, True)['inputs']
    size = ARCH[arch_of(path)][0]
    assert inputs.shape[-2:] == (size, size)
