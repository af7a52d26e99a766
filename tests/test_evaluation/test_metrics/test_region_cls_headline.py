# Copyright (c) cllip_mm contributors. All rights reserved.
"""RegionClassificationMetric(headline=...): the paper's mAcc listed first, values unchanged;
and the benchmark task files that ask for it."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData

from cllip_mm.evaluation import RegionClassificationMetric
from cllip_mm.structures import RegionTextDataSample

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
VOCAB = ('cat', 'dog', 'car')


def _sample(labels, scores):
    sample = RegionTextDataSample(metainfo=dict(img_path='a.jpg', img_shape=(32, 32),
                                                vocabulary=VOCAB))
    sample.gt_regions = InstanceData(labels=torch.tensor(labels, dtype=torch.long))
    sample.pred_regions = InstanceData(scores=torch.tensor(scores, dtype=torch.float))
    return sample


def _evaluate(labels, scores, **kwargs):
    evaluator = Evaluator(RegionClassificationMetric(**kwargs))
    evaluator.process([_sample(labels, scores)])
    return evaluator.evaluate(1)


# cat right twice, dog wrong once: top1 2/3, mAcc (1 + 0) / 2.
LABELS = [0, 0, 1]
SCORES = [[0.9, 0.1, 0.0], [0.8, 0.1, 0.0], [0.9, 0.1, 0.0]]


def test_headline_first_same_values():
    plain = _evaluate(LABELS, SCORES)
    first = _evaluate(LABELS, SCORES, headline='mean_class_acc')
    assert list(plain)[0] == 'region_cls/top1'
    assert list(first)[0] == 'region_cls/mean_class_acc'
    assert first == plain and first['region_cls/mean_class_acc'] == pytest.approx(0.5)
    assert list(first)[1:] == [k for k in plain if k != 'region_cls/mean_class_acc']
    assert list(_evaluate(LABELS, SCORES, topk=(1, 2), headline='top2'))[0] == 'region_cls/top2'
    # No labelled region: the zeros come in the same order.
    empty = _evaluate([-1], [[0.1, 0.2, 0.3]], headline='mean_class_acc')
    assert list(empty)[0] == 'region_cls/mean_class_acc'


def test_bad_headline_raises():
    with pytest.raises(ValueError, match='headline'):
        RegionClassificationMetric(topk=(1, 5), headline='top10')


@pytest.mark.parametrize('task', ['coco_region_cls', 'lvis_region_cls'])
def test_region_cls_tasks_follow_the_paper(task):
    """Raw class names (no template) and mAcc first; the template variants differ only there."""
    from cllip_mm.datasets.class_names import get_templates
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'benchmarks', '_base_', 'tasks', f'{task}.py'))
    assert get_templates(cfg.model_test_cfg.prompt_templates) == ('{}', )
    assert [m.get('headline') for m in cfg.test_evaluator] == ['mean_class_acc']
    name = task.replace('_', '-')
    paper = Config.fromfile(osp.join(ROOT, 'configs', 'benchmarks',
                                     f'cloc_vit-b16_zeroshot_{name}.py'))
    ours = Config.fromfile(osp.join(ROOT, 'configs', 'benchmarks',
                                    f'cloc_vit-b16_zeroshot_{name}-openai-templates.py'))
    assert paper.model.test_cfg.prompt_templates == 'none'
    assert ours.model.test_cfg.prompt_templates == 'openai'
    assert ours.model.test_cfg.outputs == paper.model.test_cfg.outputs
    assert ours.test_dataloader == paper.test_dataloader


def test_grit_and_imagenet_v2_tasks():
    tasks = osp.join(ROOT, 'configs', 'benchmarks', '_base_', 'tasks')
    grit = Config.fromfile(osp.join(tasks, 'grit_region_retrieval.py'))
    assert grit.test_dataloader.dataset.sample_images == 2000
    assert grit.test_dataloader.dataset.sample_seed == 0
    assert 10 in grit.test_evaluator[0].topk
    v1 = Config.fromfile(osp.join(tasks, 'imagenet_zeroshot.py'))
    v2 = Config.fromfile(osp.join(tasks, 'imagenet_v2_zeroshot.py'))
    assert v2.test_dataloader.dataset.type == v1.test_dataloader.dataset.type
    assert v2.test_dataloader.dataset.classes == 'imagenet'
    assert v2.test_dataloader.dataset.ann_file == 'meta/val.txt'
    assert v2.test_dataloader.dataset.pipeline == v1.test_dataloader.dataset.pipeline
    assert v2.model_test_cfg == v1.model_test_cfg


def test_imagenet_v2_list_command_labels_images_by_folder_number(tmp_path):
    """The command in the ImageNetV2 task file labels each image by its folder's number
    (string order would put folder '10' before '2')."""
    import subprocess

    from cllip_mm.datasets import ZeroShotImageDataset
    path = osp.join(ROOT, 'configs', 'benchmarks', '_base_', 'tasks', 'imagenet_v2_zeroshot.py')
    lines = open(path).read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('#   cd data/imagenetv2'))
    command = ' '.join(line[1:].strip().rstrip('\\') for line in lines[start:start + 2])
    folder = tmp_path / 'data' / 'imagenetv2' / 'imagenetv2-matched-frequency-format-val'
    for label in range(12):
        (folder / str(label)).mkdir(parents=True)
        (folder / str(label) / f'{label:03d}abc.jpeg').write_bytes(b'')
    subprocess.run(command, shell=True, check=True, cwd=tmp_path)
    cfg = Config.fromfile(path).test_dataloader.dataset
    dataset = ZeroShotImageDataset(
        ann_file=cfg.ann_file, data_root=str(tmp_path / 'data' / 'imagenetv2'),
        data_prefix=cfg.data_prefix, classes=[f'c{i}' for i in range(12)], test_mode=True,
        serialize_data=False)
    assert len(dataset) == 12
    for info in dataset.data_list:
        assert osp.basename(info['img_path']) == f'{info["gt_label"]:03d}abc.jpeg'
        assert osp.basename(osp.dirname(info['img_path'])) == str(info['gt_label'])
