# Copyright (c) cllip_mm contributors. All rights reserved.
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData

from cllip_mm.evaluation import ImageClassificationMetric, RegionRetrievalMetric
from cllip_mm.structures import RegionTextDataSample


def sample(name, phrases, regions, texts):
    s = RegionTextDataSample(metainfo=dict(img_path=name))
    s.gt_regions = InstanceData(phrases=phrases, bboxes=torch.zeros(len(phrases), 4))
    s.pred_regions = InstanceData(embeds=torch.tensor(regions, dtype=torch.float).reshape(-1, 2),
                                  phrase_embeds=torch.tensor(texts, dtype=torch.float).reshape(-1, 2))
    return s


def evaluate(metric, samples):
    evaluator = Evaluator(metric)
    evaluator.process(samples)
    return evaluator.evaluate(len(samples))


def test_region_retrieval_known_ranks():
    # Regions x=(1,0) "dog" (img a), y=(0,1) "cat" (img a), z=(1,0) "dog" (img b), and
    # w=(0.6,0.8) "fox" (img c). Texts equal their region's vector except "fox" = (1, 0).
    samples = [sample('a.jpg', ['dog', 'cat'], [[1, 0], [0, 1]], [[1, 0], [0, 1]]),
               sample('b.jpg', ['dog'], [[1, 0]], [[1, 0]]),
               sample('empty.jpg', [], [], []),
               sample('c.jpg', ['fox'], [[0.6, 0.8]], [[1, 0]])]
    metrics = evaluate(RegionRetrievalMetric(topk=(1, 2)), samples)
    # r2t: x matches both "dog" texts (1.0), but "fox" ties at 1.0 -> rank 1; z too;
    # y -> "cat" rank 0; w -> "fox" 0.6, behind "cat" 0.8 and tied with both "dog"s -> 3.
    # t2r: each "dog" -> x or z at 1.0 -> 0; "cat" -> y 0; "fox" -> w 0.6 behind x, z -> 2.
    assert metrics['region_retrieval/r2t_R@1'] == pytest.approx(1 / 4)
    assert metrics['region_retrieval/r2t_R@2'] == pytest.approx(3 / 4)
    assert metrics['region_retrieval/t2r_R@1'] == pytest.approx(3 / 4)
    assert metrics['region_retrieval/t2r_R@2'] == pytest.approx(3 / 4)
    assert metrics['region_retrieval/num_regions'] == 4
    assert metrics['region_retrieval/num_phrases'] == 4


def test_region_retrieval_needs_phrase_embeds():
    s = sample('a.jpg', ['dog'], [[1, 0]], [[1, 0]])
    del s.pred_regions.phrase_embeds
    with pytest.raises(KeyError, match=r"a\.jpg.*phrase_embeds.*test_cfg"):
        evaluate(RegionRetrievalMetric(), [s])


def test_image_classification_metric():
    samples = []
    for i, (label, scores) in enumerate([(0, [0.9, 0.1, 0.0]), (1, [0.5, 0.5, 0.0]),
                                         (2, [0.1, 0.2, 0.3]), (2, [0.3, 0.2, 0.1])]):
        s = RegionTextDataSample(metainfo=dict(img_path=f'{i}.jpg'))
        s.gt_label = torch.tensor([label])
        s.pred_scores = torch.tensor([scores])
        samples.append(s)
    metrics = evaluate(ImageClassificationMetric(topk=(1, 2)), samples)
    # ranks 0, 1 (a tie counts against the model), 0, 2.
    assert metrics == pytest.approx({
        'image_cls/top1': 0.5, 'image_cls/top2': 0.75, 'image_cls/mean_class_acc': 0.5,
        'image_cls/num_regions': 4, 'image_cls/num_ignored': 0, 'image_cls/num_images_left_out': 0})
