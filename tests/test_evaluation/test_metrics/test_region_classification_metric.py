# Copyright (c) cllip_mm contributors. All rights reserved.
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from cllip_mm.evaluation import RegionClassificationMetric
from cllip_mm.registry import METRICS
from cllip_mm.structures import RegionTextDataSample

VOCAB = ('cat', 'dog', 'car', 'tree', 'person', 'cup')


def without_left_out_count(metrics):
    """The metrics minus ``*/num_images_left_out``, which must be 0 (nothing left out)."""
    counts = [k for k in metrics if k.endswith('/num_images_left_out')]
    assert len(counts) == 1 and metrics.pop(counts[0]) == 0, metrics
    return metrics


def scores_with_rank(label: int, rank: int, num_classes: int = len(VOCAB)) -> torch.Tensor:
    """[V] tie-free scores where exactly ``rank`` classes beat ``label``."""
    others = [c for c in range(num_classes) if c != label]
    order = others[:rank] + [label] + others[rank:]
    scores = torch.empty(num_classes)
    scores[order] = torch.linspace(0.9, 0.1, num_classes)
    return scores


def make_sample(labels, scores, name='img.jpg', vocab=VOCAB) -> RegionTextDataSample:
    sample = RegionTextDataSample(
        metainfo=dict(img_path=name, img_shape=(32, 32), vocabulary=vocab))
    sample.gt_regions = InstanceData(labels=torch.tensor(labels, dtype=torch.long))
    sample.pred_regions = InstanceData(scores=scores)
    return sample


def run(samples, size=None, **kwargs):
    evaluator = Evaluator(RegionClassificationMetric(**kwargs))
    evaluator.process(samples)
    return without_left_out_count(evaluator.evaluate(len(samples) if size is None else size))


def test_perfect():
    labels = [0, 1, 2, 3, 4, 5, 1]
    scores = torch.stack([scores_with_rank(c, 0) for c in labels])
    metrics = run([make_sample(labels[:4], scores[:4]), make_sample(labels[4:], scores[4:])])
    assert metrics == {
        'region_cls/top1': 1.0, 'region_cls/top5': 1.0, 'region_cls/mean_class_acc': 1.0,
        'region_cls/num_regions': 7, 'region_cls/num_ignored': 0}


def test_all_wrong():
    labels = [0, 1, 2, 5]
    scores = torch.stack([scores_with_rank(c, len(VOCAB) - 1) for c in labels])
    metrics = run([make_sample(labels, scores)])
    assert metrics['region_cls/top1'] == 0.0
    assert metrics['region_cls/top5'] == 0.0  # 5 classes beat the label
    assert metrics['region_cls/mean_class_acc'] == 0.0


def test_mixed_with_ignored_regions():
    # class 0: ranks 0, 0, 2; class 1: rank 0; class 2: ranks 1, 5; one region not in
    # the vocabulary (label -1), whose scores must not matter.
    labels = [0, 1, 2, -1, 0, 0, 2]
    ranks = [0, 0, 1, 0, 0, 2, 5]
    scores = torch.stack([scores_with_rank(max(c, 0), r) for c, r in zip(labels, ranks)])
    metrics = run([make_sample(labels[:4], scores[:4], 'a.jpg'),
                   make_sample(labels[4:], scores[4:], 'b.jpg')])
    assert metrics['region_cls/top1'] == pytest.approx(3 / 6)
    assert metrics['region_cls/top5'] == pytest.approx(5 / 6)
    # mean over the classes present (0, 1, 2) of per-class top-1, not over all 6
    assert metrics['region_cls/mean_class_acc'] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert metrics['region_cls/num_regions'] == 6
    assert metrics['region_cls/num_ignored'] == 1


def test_ties_and_nan_count_against_the_model():
    vocab = ('a', 'b', 'c')
    scores = torch.tensor([[0.5, 0.5, 0.5], [0.2, 0.7, 0.7], [float('nan'), 0., 0.]])
    metrics = run([make_sample([0, 1, 0], scores, vocab=vocab)])
    assert metrics['region_cls/top1'] == 0.0
    assert 'region_cls/top5' not in metrics  # V < 5
    assert metrics['region_cls/mean_class_acc'] == 0.0


def test_topk_and_prefix():
    scores = torch.stack([scores_with_rank(0, 1), scores_with_rank(1, 2)])
    metrics = run([make_sample([0, 1], scores)], topk=(2, 1), prefix='coco')
    assert metrics == {'coco/top1': 0.0, 'coco/top2': 0.5, 'coco/mean_class_acc': 0.0,
                       'coco/num_regions': 2, 'coco/num_ignored': 0}


def test_dict_samples_and_padding_removal():
    """Samples as dicts; an image without regions (and without predictions) still
    counts as one result, so that truncation to the dataset size drops the right ones.
    """
    empty = RegionTextDataSample(metainfo=dict(img_path='empty.jpg', vocabulary=VOCAB))
    empty.gt_regions = InstanceData(labels=torch.zeros(0, dtype=torch.long))
    empty.pred_regions = InstanceData()
    good = make_sample([3], scores_with_rank(3, 0)[None])
    padded = make_sample([3], scores_with_rank(3, 4)[None])  # a sampler's padding
    metric = RegionClassificationMetric()
    metric.process({}, [empty.to_dict(), good.to_dict(), padded.to_dict()])
    metrics = metric.evaluate(size=2)
    assert metrics['region_cls/top1'] == 1.0
    assert metrics['region_cls/num_regions'] == 1


def test_data_sample_objects():
    metric = RegionClassificationMetric()
    metric.process({}, [make_sample([2], scores_with_rank(2, 0)[None].double())])
    assert metric.evaluate(1)['region_cls/top1'] == 1.0


def test_no_labelled_region():
    metrics = run([make_sample([-1, -1], torch.rand(2, len(VOCAB)))])
    assert metrics['region_cls/top1'] == 0.0
    assert metrics['region_cls/num_regions'] == 0
    assert metrics['region_cls/num_ignored'] == 2


def test_bad_input():
    no_scores = make_sample([0], torch.rand(1, 6), name='x/no_scores.jpg')
    no_scores.pred_regions = InstanceData()
    with pytest.raises(KeyError, match=r'no_scores\.jpg.*pred_regions\.scores'):
        run([no_scores])
    with pytest.raises(ValueError, match=r'bad_label\.jpg.*gt_regions\.labels'):
        run([make_sample([6], torch.rand(1, 6), name='bad_label.jpg')])
    with pytest.raises(ValueError, match=r'rows\.jpg.*2 rows'):
        run([make_sample([0], torch.rand(2, 6), name='rows.jpg')])
    with pytest.raises(ValueError, match='vocabulary size differs'):
        run([make_sample([0], torch.rand(1, 6)), make_sample([0], torch.rand(1, 5))])
    with pytest.raises(ValueError, match='topk'):
        RegionClassificationMetric(topk=0)


def test_registry_build():
    assert METRICS.get('RegionClassificationMetric') is RegionClassificationMetric
    with DefaultScope.overwrite_default_scope('cllip_mm'):
        evaluator = Evaluator([dict(type='RegionClassificationMetric', topk=1)])
    assert isinstance(evaluator.metrics[0], RegionClassificationMetric)
    assert evaluator.metrics[0].topk == (1, )
