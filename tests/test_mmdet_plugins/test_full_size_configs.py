"""Every full-size downstream config (``configs/downstream/**/*vit-b16*.py``) works as
shipped: MMEngine's ``Runner`` (what mmdet's ``tools/train.py`` / ``test.py`` run) builds
its detector, trains one iteration on a 2-image batch and tests it, on CPU with random
weights, through the config's own pipelines, optimiser constructor and evaluator.

The only changes to a config are where its data lives (2 images written to ``tmp_path`` in
the format of each dataset the config uses: COCO, ODVG grounding, MDETR-style RefCOCO,
proposals; labelled with the config's own class names), one epoch, no validation during
training, no checkpoint files, seed 0, random encoder weights (no ``Pretrained`` init) and, only
when ``fairscale`` is not installed, ``model.encoder.num_cp=0`` (mmdet's Grounding DINO
encoder checkpointing imports it). So a user with COCO and a GPU changes the data root.

Configs whose training iteration here is the same computation as an earlier one's
(RefCOCO, RefCOCO+ and RefCOCOg: only the train annotation file differs, and the test writes
its own) train once: the others build their train set and test (:func:`training_twin`).

The images are 64:1 (3200 x 50): every pipeline resizes them to mmdet's 1333-pixel scale
(1333 x 21; Grounding DINO's crop branch gives at most ~1333 x 180), which keeps ViT-B/16's
global attention and Grounding DINO's encoder (without checkpointing) to a few hundred
tokens: a 4:3 image makes ~4k ViT tokens and over 16 GB of activations on CPU.
"""
import functools
import glob
import importlib.util
import math
import os
import os.path as osp
import pickle
import sys

import numpy as np
import pytest
import torch
from mmengine import Config
from mmengine.logging import MessageHub
from mmengine.registry import DefaultScope
from mmengine.visualization import Visualizer

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
FULL_SIZE = sorted(osp.relpath(p, REPO) for p in glob.glob(
    osp.join(REPO, 'configs/downstream/**/*vit-b16*.py'), recursive=True)
    if '/_base_/' not in p)
IMG_W, IMG_H = 3200, 50


def load_converter():
    """tools/dataset_converters/synthetic_to_coco.py (its mmdet-format writers)."""
    name = 'tool_synthetic_to_coco'
    if name not in sys.modules:
        path = osp.join(REPO, 'tools/dataset_converters/synthetic_to_coco.py')
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def write_images(root: str) -> None:
    os.makedirs(osp.join(root, 'img'), exist_ok=True)
    import cv2
    rng = np.random.default_rng(0)
    for i in range(2):
        img = rng.integers(0, 255, (IMG_H, IMG_W, 3), dtype=np.uint8)
        cv2.imwrite(osp.join(root, 'img', f'{i}.jpg'), img)


def records(phrases):
    """2 images with 2 boxes each, labelled ``phrases[0]`` and ``phrases[1]``."""
    boxes = np.array([[10., 5., 60., 40.], [1500., 10., 1800., 45.]])
    return [dict(file_name=f'img/{i}.jpg', width=IMG_W, height=IMG_H,
                 caption=f'{phrases[0]} and {phrases[1]}', bboxes=boxes + i * 5,
                 phrases=list(phrases[:2])) for i in range(2)]


def default_classes(dataset: dict):
    from mmdet.registry import DATASETS
    with DefaultScope.overwrite_default_scope('mmdet'):
        return DATASETS.get(dataset['type']).METAINFO['classes']


def write_dataset(dataset: dict, root: str, name: str) -> str:
    """Write the 2-image set in ``dataset``'s format; point ``dataset`` at it. Returns
    the annotation file (for the evaluator)."""
    s2c = load_converter()
    kind = dataset['type']
    meta = dataset.get('metainfo') or {}
    if kind == 'ODVGDataset':
        vg, _ = s2c.to_refexp(records(['red thing', 'blue thing']), 'refcoco')
        s2c._dump_jsonl(vg[:2], osp.join(root, name + '.jsonl'))
        dataset.update(ann_file=name + '.jsonl', label_map_file=None)
    elif kind == 'MDETRStyleRefCocoDataset':
        _, coco = s2c.to_refexp(records(['red thing', 'blue thing']), 'refcoco')
        coco['images'], coco['annotations'] = coco['images'][:2], coco['annotations'][:2]
        s2c._dump_json(coco, osp.join(root, name + '.json'))
        dataset.update(ann_file=name + '.json')
    elif kind == 'CocoDataset':
        classes = list(meta.get('classes') or default_classes(dataset))
        # a base and a novel class when the set has the OV split, else the first two
        novel = list(meta.get('novel_classes') or [])
        used = [c for c in classes if c not in novel][:1] + (novel[:1] or classes[1:2])
        recs = records(used)
        s2c._dump_json(s2c.to_coco(recs, classes), osp.join(root, name + '.json'))
        dataset.update(ann_file=name + '.json')
        if dataset.get('proposal_file'):
            with open(osp.join(root, name + '_proposals.pkl'), 'wb') as f:
                pickle.dump(s2c.make_proposals(recs, 0, 0, 5), f)
            dataset.update(proposal_file=name + '_proposals.pkl')
    else:
        raise AssertionError(f'no 2-image writer for a {kind}: add one to this test')
    dataset.update(data_root=root + '/', data_prefix=dict(img=''))
    return osp.join(root, dataset['ann_file'])


def sub_datasets(loader: dict):
    dataset = loader['dataset']
    return list(dataset['datasets']) if dataset['type'] == 'ConcatDataset' else [dataset]


def sub_metrics(evaluator):
    if isinstance(evaluator, (list, tuple)):
        return list(evaluator)
    if evaluator.get('type') == 'MultiDatasetsEvaluator':
        return list(evaluator['metrics'])
    return [evaluator]


def shrink(cfg: Config, root: str, work_dir: str) -> Config:
    """The changes of the module docstring."""
    if cfg.get('train_dataloader'):
        loader = cfg.train_dataloader
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        for i, dataset in enumerate(sub_datasets(loader)):
            write_dataset(dataset, root, f'train{i}')
        cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
    loader = cfg.test_dataloader
    loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    datasets, metrics = sub_datasets(loader), sub_metrics(cfg.test_evaluator)
    assert len(datasets) == len(metrics), 'one metric per test dataset'
    for i, (dataset, metric) in enumerate(zip(datasets, metrics)):
        ann_file = write_dataset(dataset, root, f'test{i}')
        if 'ann_file' in metric:
            metric['ann_file'] = ann_file
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.default_hooks.checkpoint = None
    cfg.work_dir = work_dir
    cfg.load_from = None
    cfg.randomness = dict(seed=0)  # the same augmentation branch (and cost) every run
    for key in ('backbone', 'language_model'):
        if cfg.model.get(key) is not None:
            cfg.model[key].init_cfg = None
    if cfg.model.get('encoder', {}).get('num_cp') and importlib.util.find_spec('fairscale') is None:
        cfg.model.encoder.num_cp = 0
    return cfg


class isolated_runner_state:
    """The runner makes its scope / message hub / visualizer the current ones and sets
    torch's threads: restore them for the other tests."""

    managers = (DefaultScope, MessageHub, Visualizer)

    def __enter__(self):
        self.saved = [dict(m._instance_dict) for m in self.managers]
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.threads)
        for manager, saved in zip(self.managers, self.saved):
            manager._instance_dict.clear()
            manager._instance_dict.update(saved)


TRAINING_KEYS = ('model', 'optim_wrapper', 'param_scheduler', 'train_cfg', 'randomness')


@functools.lru_cache(maxsize=None)
def training_part(config: str) -> dict:
    """What one training iteration of this test computes, given its own 2-image data: the
    model, optimiser, schedule and train loader, less the train set's annotation file
    (which :func:`write_dataset` replaces). Kept per config: read-only."""
    cfg = Config.fromfile(osp.join(REPO, config)).to_dict()
    part = {key: cfg.get(key) for key in TRAINING_KEYS}
    loader = cfg.get('train_dataloader')
    if loader is not None:
        loader = {**loader, 'dataset': {k: v for k, v in loader['dataset'].items()
                                        if k != 'ann_file'}}
    part['train_dataloader'] = loader
    return part


def training_twin(config: str):
    """An earlier full-size config whose training iteration here is the same computation
    (RefCOCO+ and RefCOCOg train as RefCOCO does, on other annotation files): that one's
    test trains; this one's builds its train set and tests (its evaluators differ)."""
    part = training_part(config)
    if part['train_dataloader'] is None:
        return None
    for other in FULL_SIZE[:FULL_SIZE.index(config)]:
        if training_part(other) == part:
            return other
    return None


def test_the_full_size_configs_are_found():
    names = [osp.basename(p) for p in FULL_SIZE]
    twins = {c: training_twin(c) for c in FULL_SIZE}
    refcocos = [c for c in FULL_SIZE if '/refcoco/' in c]
    assert len(refcocos) == 3, refcocos  # RefCOCO, RefCOCO+, RefCOCOg: one trains in its test
    trainer = [c for c in refcocos if twins[c] is None]
    assert len(trainer) == 1 and all(twins[c] in trainer for c in refcocos if c not in trainer)
    assert sum(t is not None for t in twins.values()) == 2, twins
    assert 'grounding-dino_cloc-vit-b16_16xb4-1x_ov-coco-48-17.py' in names
    assert 'faster-rcnn_cloc-vit-b16_fpn_8xb2-1x_coco.py' in names
    assert len(FULL_SIZE) >= 6


@pytest.mark.slow
@pytest.mark.parametrize('config', FULL_SIZE, ids=[osp.basename(p) for p in FULL_SIZE])
def test_full_size_config_trains_and_tests_one_iteration(config, tmp_path, monkeypatch,
                                                         synthetic_root):
    from mmengine.runner import Runner

    monkeypatch.setenv('CLOC_TOKENIZER', osp.join(synthetic_root, 'tokenizer'))
    monkeypatch.setenv('CLOC_CHECKPOINT', str(tmp_path / 'not_loaded.pth'))
    root = str(tmp_path / 'data')
    write_images(root)
    cfg = shrink(Config.fromfile(osp.join(REPO, config)), root, str(tmp_path / 'work_dir'))
    trains = cfg.get('train_dataloader') is not None
    twin = training_twin(config) if trains else None

    with isolated_runner_state():
        runner = Runner.from_cfg(cfg)
        model = runner.model
        if twin is not None:  # its training iteration is tested under the twin's name
            assert len(runner.train_dataloader.dataset) == 2
        elif trains:
            runner.train()
            assert runner.iter == 1 and len(runner.train_dataloader.dataset) == 2
            loss = runner.message_hub.get_scalar('train/loss').current()
            assert math.isfinite(loss) and loss > 0, f'{config}: loss {loss}'
            # gradients reached the ViT (and the text tower): AdamW has moments for them
            state = runner.optim_wrapper.optimizer.state
            block = model.backbone.vit.transformer.resblocks[-1].mlp.c_fc.weight
            assert state[block]['exp_avg'].abs().sum() > 0, f'{config}: no ViT gradient'
            if getattr(model, 'language_model', None) is not None:
                text = model.language_model.language_backbone.body.model
                param = text.transformer.resblocks[-1].mlp.c_fc.weight
                assert state[param]['exp_avg'].abs().sum() > 0, f'{config}: no text gradient'
        else:
            assert 'zeroshot' in config, f'{config}: no train_dataloader'
        metrics = runner.test()

    assert len(runner.test_dataloader) == math.ceil(len(runner.test_dataloader.dataset) / 2)
    evaluator = cfg.test_evaluator
    types = {m['type'] for m in sub_metrics(evaluator)}
    if 'RefExpMetric' in types:
        wanted = [k for k in metrics if k.endswith('_precision@1')]
    elif 'OVCocoMetric' in types:
        wanted = ['coco/novel_ap50', 'coco/base_ap50', 'coco/bbox_mAP']
    else:
        wanted = ['coco/bbox_mAP']
    assert wanted and all(k in metrics for k in wanted), (config, sorted(metrics))
    assert all(isinstance(metrics[k], float) for k in wanted)
