# Copyright (c) cllip_mm contributors. All rights reserved.
"""Boxes, phrases and images move together through Resize / crop / flip / sampling."""
import copy

import numpy as np
import pytest

from cllip_mm.datasets.transforms import (
    RandomFlipWithPhrases,
    RandomResizedCropWithRegions,
    swap_left_right,
)
from cllip_mm.registry import TRANSFORMS


def _results(h=100, w=200, boxes=((20, 10, 60, 50), ), phrases=None):
    """An image whose pixel (y, x) holds (y, x % 256, 0)."""
    ys, xs = np.mgrid[0:h, 0:w]
    img = np.stack([ys, xs % 256, np.zeros_like(xs)], axis=-1).astype(np.uint8)
    boxes = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    phrases = phrases or [f'p{i}' for i in range(len(boxes))]
    return dict(img=img, img_shape=(h, w), ori_shape=(h, w), gt_bboxes=boxes,
                gt_phrases=list(phrases),
                gt_scores=np.linspace(0.1, 1, len(boxes)).astype(np.float32),
                caption='a left thing and a right thing')


def test_mmcv_resize_rescales_boxes():
    resize = TRANSFORMS.build(dict(type='Resize', scale=(100, 25)))  # (w, h)
    out = resize(_results())
    assert out['img'].shape == (25, 100, 3) and out['img_shape'] == (25, 100)
    np.testing.assert_allclose(out['gt_bboxes'], [[10, 2.5, 30, 12.5]])

    keep = TRANSFORMS.build(dict(type='Resize', scale=(400, 400), keep_ratio=True))
    out = keep(_results())
    assert out['img_shape'] == (200, 400)
    np.testing.assert_allclose(out['gt_bboxes'], [[40, 20, 120, 100]])


@pytest.mark.parametrize('direction,expected', [('horizontal', [140, 10, 180, 50]),
                                                ('vertical', [20, 50, 60, 90])])
def test_mmcv_random_flip_moves_boxes(direction, expected):
    flip = TRANSFORMS.build(dict(type='RandomFlip', prob=1.0, direction=direction))
    results = _results()
    img = results['img'].copy()
    out = flip(results)
    np.testing.assert_allclose(out['gt_bboxes'], [expected])
    # pixel (y=10, x=20), the top-left corner inside the box, moved with the box
    x, y = (199 - 20, 10) if direction == 'horizontal' else (20, 99 - 10)
    np.testing.assert_array_equal(out['img'][y, x], img[10, 20])


def test_swap_left_right():
    assert swap_left_right('Left of the bright square, RIGHT; leftover') == \
        'Right of the bright square, LEFT; leftover'


def test_flip_with_phrases_swaps_words_and_twice_is_identity():
    flip = TRANSFORMS.build(dict(type='RandomFlipWithPhrases', prob=1.0))
    assert isinstance(flip, RandomFlipWithPhrases)
    results = _results(boxes=[(20, 10, 60, 50), (0, 0, 200, 100)],
                       phrases=['left red cube', 'bright sky'])
    original = copy.deepcopy(results)
    out = flip(results)
    assert out['flip'] and out['flip_direction'] == 'horizontal'
    np.testing.assert_allclose(out['gt_bboxes'], [[140, 10, 180, 50], [0, 0, 200, 100]])
    assert out['gt_phrases'] == ['right red cube', 'bright sky']
    assert out['caption'] == 'a right thing and a left thing'

    twice = flip(out)
    np.testing.assert_allclose(twice['gt_bboxes'], original['gt_bboxes'])
    np.testing.assert_array_equal(twice['img'], original['img'])
    assert twice['gt_phrases'] == original['gt_phrases']
    assert twice['caption'] == original['caption']


def test_vertical_flip_keeps_left_right():
    flip = RandomFlipWithPhrases(prob=1.0, direction='vertical')
    out = flip(_results(phrases=['left cube']))
    assert out['gt_phrases'] == ['left cube']
    assert out['caption'] == 'a left thing and a right thing'


def test_flip_with_prob_zero_changes_nothing():
    out = RandomFlipWithPhrases(prob=0.0)(_results(phrases=['left cube']))
    assert not out['flip'] and out['gt_phrases'] == ['left cube']
    np.testing.assert_allclose(out['gt_bboxes'], [[20, 10, 60, 50]])


def test_crop_moves_clips_and_drops_boxes():
    crop = TRANSFORMS.build(dict(type='RandomResizedCropWithRegions', size=(25, 50),
                                 min_area_ratio=0.3, interpolation='nearest'))
    # the crop x in [50, 150), y in [20, 70): 100 x 50 px, resized by 0.5
    crop._sample_crop = lambda h, w: (50, 20, 150, 70)
    boxes = [
        (60, 30, 100, 60),   # a: inside                       -> kept
        (140, 30, 180, 60),  # b: 25 % of its area inside      -> dropped
        (0, 0, 40, 40),      # c: outside                      -> dropped
        (40, 10, 80, 30),    # d: 37.5 % inside, clipped       -> kept
    ]
    results = _results(boxes=boxes, phrases=['a', 'b', 'c', 'd'])
    img, scores = results['img'], results['gt_scores'].copy()
    out = crop(results)
    assert out['img'].shape == (25, 50, 3) and out['img_shape'] == (25, 50)
    np.testing.assert_allclose(out['crop_bbox'], [50, 20, 150, 70])
    assert out['gt_phrases'] == ['a', 'd']
    np.testing.assert_allclose(out['gt_bboxes'], [[5, 5, 25, 20], [0, 0, 15, 5]])
    np.testing.assert_allclose(out['gt_scores'], scores[[0, 3]])
    # nearest resize by 1/2: output pixel (y, x) comes from input (20 + 2y, 50 + 2x)
    np.testing.assert_array_equal(out['img'][3, 7], img[20 + 6, 50 + 14])


def test_crop_falls_back_to_centre_crop():
    crop = RandomResizedCropWithRegions(size=32, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    out = crop(_results())  # a 200 x 100 image has no 1:1 crop of its whole area
    np.testing.assert_allclose(out['crop_bbox'], [50, 0, 150, 100])
    # box (20, 10, 60, 50) keeps x in [50, 60): 25 % of its area -> dropped
    assert out['gt_phrases'] == [] and out['gt_bboxes'].shape == (0, 4)


def test_random_crop_keeps_regions_consistent():
    crop = RandomResizedCropWithRegions(size=(48, 64), scale=(0.2, 1.0))
    rng = np.random.default_rng(0)
    np.random.seed(0)
    sizes = set()
    for _ in range(50):
        xy = rng.uniform([0, 0], [150, 80], (6, 2))
        wh = rng.uniform(5, 60, (6, 2))
        boxes = np.concatenate([xy, np.minimum(xy + wh, [200, 100])], axis=1)
        out = crop(_results(boxes=boxes))
        x1, y1, x2, y2 = out['crop_bbox']
        assert 0 <= x1 < x2 <= 200 and 0 <= y1 < y2 <= 100
        sizes.add((x2 - x1, y2 - y1))
        assert out['img'].shape == (48, 64, 3)
        b = out['gt_bboxes']
        assert len(b) == len(out['gt_phrases']) == len(out['gt_scores'])
        assert (b[:, 0] >= 0).all() and (b[:, 2] <= 64).all()
        assert (b[:, 1] >= 0).all() and (b[:, 3] <= 48).all()
        assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
    assert len(sizes) > 10  # crops really are random


def test_crop_rejects_bad_arguments():
    with pytest.raises(ValueError):
        RandomResizedCropWithRegions(size=(32, 32), scale=(0.5, 0.2))


def test_sample_regions():
    sample = TRANSFORMS.build(dict(type='SampleRegions', max_regions=8))
    np.random.seed(0)
    boxes = [(i, 0, i + 10, 10) for i in range(12)]
    seen = set()
    for _ in range(20):
        out = sample(_results(boxes=boxes))
        kept = [int(p[1:]) for p in out['gt_phrases']]
        assert len(kept) == 8 and kept == sorted(set(kept))
        np.testing.assert_allclose(out['gt_bboxes'][:, 0], kept)  # boxes in step
        np.testing.assert_allclose(out['gt_scores'], np.linspace(0.1, 1, 12)[kept],
                                   rtol=1e-6)
        seen.add(tuple(kept))
    assert len(seen) > 1
    few = sample(_results(boxes=boxes[:3]))
    assert few['gt_phrases'] == ['p0', 'p1', 'p2']


def test_zoom_out_moves_boxes_with_their_pixels():
    """The pixels inside every box are the same before and after; the rest is fill."""
    zoom = TRANSFORMS.build(
        dict(type='RandomZoomOutWithRegions', prob=1.0, ratio_range=(1.5, 2.5), fill=(7, 8, 9)))
    for seed in range(5):
        np.random.seed(seed)
        results = _results(boxes=((20, 10, 60, 50), (100, 0, 200, 100)))
        before = [results['img'][int(y1):int(y2), int(x1):int(x2)].copy()
                  for x1, y1, x2, y2 in results['gt_bboxes']]
        out = zoom(copy.deepcopy(results))
        h, w = out['img_shape']
        assert out['img'].shape[:2] == (h, w) and 150 <= h <= 250 and 300 <= w <= 500
        for box, pixels in zip(out['gt_bboxes'], before):
            x1, y1, x2, y2 = box.astype(int)
            np.testing.assert_array_equal(out['img'][y1:y2, x1:x2], pixels)
        inside = np.zeros((h, w), dtype=bool)
        top, left = int(out['gt_bboxes'][1, 1]), int(out['gt_bboxes'][0, 0]) - 20
        inside[top:top + 100, left:left + 200] = True
        assert (out['img'][~inside] == (7, 8, 9)).all()
        assert out['gt_phrases'] == results['gt_phrases']


def test_zoom_out_mean_fill_and_prob():
    results = _results()
    np.random.seed(0)
    out = TRANSFORMS.build(dict(type='RandomZoomOutWithRegions', prob=1.0,
                                ratio_range=(2.0, 2.0)))(copy.deepcopy(results))
    np.testing.assert_array_equal(out['img'][0, 0], np.round(results['img'].reshape(-1, 3).mean(0)))
    same = TRANSFORMS.build(dict(type='RandomZoomOutWithRegions', prob=0.0))(copy.deepcopy(results))
    np.testing.assert_array_equal(same['img'], results['img'])
    np.testing.assert_array_equal(same['gt_bboxes'], results['gt_bboxes'])
    with pytest.raises(ValueError, match='ratio_range'):
        TRANSFORMS.build(dict(type='RandomZoomOutWithRegions', ratio_range=(0.5, 2.0)))
