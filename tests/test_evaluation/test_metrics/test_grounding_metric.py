# Copyright (c) cllip_mm contributors. All rights reserved.
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from cllip_mm.evaluation import GroundingMetric
from cllip_mm.registry import METRICS
from cllip_mm.structures import RegionTextDataSample


def without_left_out_count(metrics):
    """The metrics minus ``*/num_images_left_out``, which must be 0 (nothing left out)."""
    counts = [k for k in metrics if k.endswith('/num_images_left_out')]
    assert len(counts) == 1 and metrics.pop(counts[0]) == 0, metrics
    return metrics


def make_sample(gt, pred, img_shape, name='img.jpg') -> RegionTextDataSample:
    sample = RegionTextDataSample(metainfo=dict(img_path=name, img_shape=img_shape))
    sample.gt_regions = InstanceData(bboxes=torch.tensor(gt, dtype=torch.float32).view(-1, 4))
    sample.pred_regions = InstanceData(
        ground_bboxes=torch.tensor(pred, dtype=torch.float32).view(-1, 4))
    return sample


def known_samples():
    """Two images; IoU with the GT / with the whole image box noted per phrase."""
    a = make_sample(
        gt=[[0, 0, 120, 100],   # pred IoU 0.6,   whole image (200 x 100) IoU 0.6
            [0, 0, 80, 100],    # pred IoU 0.4,   whole 0.4
            [50, 0, 150, 90],   # pred IoU 1.0,   whole 0.45
            [0, 0, 200, 100]],  # pred IoU 0.005, whole 1.0
        pred=[[0, 0, 120, 60], [0, 0, 80, 40], [50, 0, 150, 90], [0, 0, 10, 10]],
        img_shape=(100, 200), name='a.jpg')
    b = make_sample(gt=[[0, 0, 20, 50]],  # pred IoU 1.0, whole (50 x 50) IoU 0.4
                    pred=[[0, 0, 20, 50]], img_shape=(50, 50), name='b.jpg')
    return [a, b]


def run(samples, **kwargs):
    evaluator = Evaluator(GroundingMetric(**kwargs))
    evaluator.process(samples)
    return without_left_out_count(evaluator.evaluate(len(samples)))


def test_known_ious():
    metrics = run(known_samples())
    assert metrics == pytest.approx({
        'grounding/acc@0.5': 3 / 5,
        'grounding/mean_iou': (0.6 + 0.4 + 1 + 0.005 + 1) / 5,
        'grounding/whole_image_acc@0.5': 2 / 5,
        'grounding/num_phrases': 5})


def test_thresholds():
    metrics = run(known_samples(), iou_thrs=(0.3, 0.75), prefix='ref')
    assert metrics == pytest.approx({
        'ref/acc@0.3': 4 / 5, 'ref/acc@0.75': 2 / 5, 'ref/mean_iou': 3.005 / 5,
        'ref/whole_image_acc@0.3': 5 / 5, 'ref/whole_image_acc@0.75': 1 / 5,
        'ref/num_phrases': 5})


def test_empty_sample_nan_and_padding_removal():
    empty = RegionTextDataSample(metainfo=dict(img_path='e.jpg', img_shape=(10, 10)))
    empty.gt_regions = InstanceData(bboxes=torch.zeros(0, 4))
    empty.pred_regions = InstanceData()
    nan = make_sample([[0, 0, 5, 5]], [[float('nan')] * 4], (10, 10))
    good = make_sample([[0, 0, 5, 5]], [[0, 0, 5, 5]], (10, 10))
    metric = GroundingMetric()
    metric.process({}, [empty, nan.to_dict(), good.to_dict(), nan.to_dict()])
    metrics = metric.evaluate(size=3)  # the last one is a sampler's padding
    assert metrics['grounding/num_phrases'] == 2
    assert metrics['grounding/acc@0.5'] == 0.5
    assert metrics['grounding/mean_iou'] == pytest.approx(0.5)


def test_bad_input():
    sample = known_samples()[0]
    sample.pred_regions = InstanceData()
    with pytest.raises(KeyError, match=r'a\.jpg.*pred_regions\.ground_bboxes'):
        run([sample])
    sample = make_sample([[0, 0, 5, 5]], [[0, 0, 5, 5], [0, 0, 1, 1]], (10, 10), 'n.jpg')
    with pytest.raises(ValueError, match=r'n\.jpg.*2 boxes'):
        run([sample])
    sample = make_sample([[0, 0, 5, 5]], [[0, 0, 5, 5]], (10, 10), 'shape.jpg')
    sample.gt_regions.bboxes = torch.zeros(1, 5)
    with pytest.raises(ValueError, match=r'shape\.jpg.*gt_regions\.bboxes.*last dim 4'):
        run([sample])
    with pytest.raises(ValueError, match='iou_thrs'):
        GroundingMetric(iou_thrs=1.5)


def test_registry_build():
    assert METRICS.get('GroundingMetric') is GroundingMetric
    with DefaultScope.overwrite_default_scope('cllip_mm'):
        evaluator = Evaluator([dict(type='GroundingMetric', iou_thrs=[0.5, 0.7])])
    assert evaluator.metrics[0].iou_thrs == (0.5, 0.7)
