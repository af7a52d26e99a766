# Copyright (c) cllip_mm contributors. All rights reserved.
import numpy as np
import torch

from cllip_mm.registry import TRANSFORMS
from cllip_mm.structures import RegionTextDataSample


def _results(**extra):
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    results = dict(img=img, img_path='x.jpg', ori_shape=(8, 12), img_shape=(4, 6),
                   caption='a cat and a dog', flip=False, ann_line=3, sample_idx=5,
                   gt_bboxes=np.array([[0, 0, 2, 2], [1, 1, 6, 4]], np.float64),
                   gt_phrases=['cat', 'dog'],
                   gt_scores=np.array([0.5, 1.0], np.float32))
    results.update(extra)
    return results


def test_pack_inputs_and_regions():
    pack = TRANSFORMS.build(dict(type='PackRegionTextInputs'))
    results = _results()
    out = pack(results)
    img = out['inputs']
    assert img.shape == (3, 4, 6) and img.dtype == torch.uint8
    assert torch.equal(img, torch.from_numpy(results['img']).permute(2, 0, 1))
    sample = out['data_samples']
    assert isinstance(sample, RegionTextDataSample)
    regions = sample.gt_regions
    assert regions.bboxes.dtype == torch.float32
    assert torch.equal(regions.bboxes, torch.tensor([[0., 0, 2, 2], [1, 1, 6, 4]]))
    assert regions.phrases == ['cat', 'dog']
    assert torch.allclose(regions.scores, torch.tensor([0.5, 1.0]))
    assert 'labels' not in regions and 'vocabulary' not in sample
    assert sample.img_path == 'x.jpg' and sample.caption == 'a cat and a dog'
    assert sample.ori_shape == (8, 12) and sample.img_shape == (4, 6)
    assert sample.flip is False and sample.ann_line == 3 and sample.sample_idx == 5


def test_pack_labels_from_vocabulary():
    pack = TRANSFORMS.build(dict(type='PackRegionTextInputs'))
    sample = pack(_results(vocabulary=('bird', 'dog')))['data_samples']
    assert sample.vocabulary == ('bird', 'dog')
    assert sample.gt_regions.labels.dtype == torch.long
    assert sample.gt_regions.labels.tolist() == [-1, 1]  # 'cat' is not in it


def test_pack_without_regions_or_scores():
    pack = TRANSFORMS.build(dict(type='PackRegionTextInputs'))
    sample = pack(_results(gt_bboxes=np.zeros((0, 4), np.float32), gt_phrases=[],
                           gt_scores=None, vocabulary=('cat', )))['data_samples']
    assert sample.gt_regions.bboxes.shape == (0, 4)
    assert sample.gt_regions.scores.shape == (0, ) and sample.gt_regions.labels.shape == (0, )
    results = _results()
    del results['gt_scores']
    sample = pack(results)['data_samples']
    assert sample.gt_regions.scores.tolist() == [1.0, 1.0]
