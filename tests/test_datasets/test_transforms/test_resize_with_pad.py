# Copyright (c) cllip_mm contributors. All rights reserved.
"""ResizeWithPad: tf.image.resize_with_pad's geometry (centred padding, TensorFlow's
rounding), boxes and pixels moving together."""
import mmcv
import numpy as np
import pytest

from cllip_mm.datasets.transforms import ResizeWithPad, resize_with_pad_geometry
from cllip_mm.registry import TRANSFORMS

GREY = 128
RED = (0, 0, 255)  # BGR


def _results(h, w, box=(20, 10, 60, 40)):
    """A grey image with a red rectangle exactly filling ``box`` (xyxy pixels)."""
    img = np.full((h, w, 3), GREY, dtype=np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = RED
    return dict(img=img, img_shape=(h, w), ori_shape=(h, w),
                gt_bboxes=np.array([box], dtype=np.float32), gt_phrases=['red box'])


# (img_h, img_w, out_h, out_w) -> (new_h, new_w, top, left), worked out by hand from
# TensorFlow's _resize_image_with_pad_common: ratio = max(w / out_w, h / out_h),
# new = floor(size / ratio), top / left = floor((out - size / ratio) / 2).
@pytest.mark.parametrize('shapes,expected', [
    ((60, 100, 224, 224), (134, 224, 44, 0)),    # 134.4 rows: 44.8 -> 44 on top
    ((100, 60, 224, 224), (224, 134, 0, 44)),    # portrait: the padding on the left / right
    ((480, 640, 224, 224), (168, 224, 28, 0)),   # exact: 28 and 28
    ((50, 50, 224, 224), (224, 224, 0, 0)),      # square: scaled up, no padding
    ((50, 50, 100, 200), (100, 100, 0, 50)),     # a non-square target
    ((1, 1000, 224, 224), (1, 224, 111, 0)),     # 0.224 rows: at least one kept
])
def test_geometry_is_tensorflows(shapes, expected):
    assert resize_with_pad_geometry(*shapes) == expected


def test_non_square_image_is_centred_with_exact_offsets_and_box():
    transform = TRANSFORMS.build(dict(type='ResizeWithPad', size=224))
    assert isinstance(transform, ResizeWithPad)
    out = transform(_results(60, 100))
    assert out['img'].shape == (224, 224, 3) and out['img'].dtype == np.uint8
    assert out['img_shape'] == (224, 224) and out['pad_shape'] == (224, 224, 3)
    assert out['ori_shape'] == (60, 100)
    # 60 x 100 -> 134 x 224; 90 rows of padding: 44 on top, 46 below, none left / right.
    np.testing.assert_array_equal(out['pad_param'], [44, 46, 0, 0])
    assert out['scale_factor'] == pytest.approx((224 / 100, 134 / 60))
    # The box scaled by (2.24, 134 / 60), then moved down by the 44 rows on top.
    np.testing.assert_allclose(
        out['gt_bboxes'],
        [[20 * 2.24, 10 * 134 / 60 + 44, 60 * 2.24, 40 * 134 / 60 + 44]], rtol=1e-6)
    assert out['gt_phrases'] == ['red box']

    img = out['img']
    # Zero padding above and below the image, the image's grey in between.
    assert (img[:44] == 0).all() and (img[178:] == 0).all()
    assert (img[44, :] == GREY).all() and (img[177, :] == GREY).all()


def test_box_covers_the_drawn_rectangle_after_the_transform():
    out = ResizeWithPad(size=224)(_results(60, 100))
    img = out['img']
    x1, y1, x2, y2 = out['gt_bboxes'][0]
    # Inside the new box (1.5 px in from its edges, past the bilinear blend): red.
    inner = img[int(np.ceil(y1 + 1.5)):int(y2 - 1.5), int(np.ceil(x1 + 1.5)):int(x2 - 1.5)]
    assert inner.size and (inner == RED).all()
    # Just outside it (2 px), the grey background, on all four sides.
    cy, cx = int((y1 + y2) / 2), int((x1 + x2) / 2)
    for y, x in [(int(y1) - 2, cx), (int(np.ceil(y2)) + 2, cx),
                 (cy, int(x1) - 2), (cy, int(np.ceil(x2)) + 2)]:
        assert (img[y, x] == GREY).all(), (y, x, img[y, x])
    # Every red pixel lies inside the box.
    ys, xs = np.nonzero((img == RED).all(-1))
    assert ys.min() >= y1 and ys.max() < y2 and xs.min() >= x1 and xs.max() < x2


def test_portrait_image_is_padded_left_and_right():
    out = ResizeWithPad(size=224)(_results(100, 60, box=(10, 20, 40, 60)))
    np.testing.assert_array_equal(out['pad_param'], [0, 0, 44, 46])
    np.testing.assert_allclose(
        out['gt_bboxes'], [[10 * 134 / 60 + 44, 20 * 2.24, 40 * 134 / 60 + 44, 60 * 2.24]],
        rtol=1e-6)
    assert (out['img'][:, :44] == 0).all() and (out['img'][:, 178:] == 0).all()


def test_square_image_gets_no_padding():
    out = ResizeWithPad(size=224)(_results(50, 50, box=(10, 20, 30, 40)))
    np.testing.assert_array_equal(out['pad_param'], [0, 0, 0, 0])
    assert out['img'].shape == (224, 224, 3) and out['scale_factor'] == (224 / 50, 224 / 50)
    np.testing.assert_allclose(out['gt_bboxes'], [[44.8, 89.6, 134.4, 179.2]], rtol=1e-6)
    assert not (out['img'] == 0).all(-1).any()  # no zero (padding) pixel anywhere


def test_pad_value_and_interpolation_are_configurable():
    results = _results(60, 100)
    expected = mmcv.impad(mmcv.imresize(results['img'], (224, 134), interpolation='nearest'),
                          padding=(0, 44, 0, 46), pad_val=(1, 2, 3))
    out = ResizeWithPad(size=(224, 224), pad_val=(1, 2, 3), interpolation='nearest')(results)
    np.testing.assert_array_equal(out['img'], expected)
    assert (out['img'][:44] == (1, 2, 3)).all()
    assert 'ResizeWithPad(size=(224, 224)' in repr(ResizeWithPad(224))


def test_default_interpolation_is_bilinear_and_no_boxes_is_fine():
    results = _results(60, 100)
    del results['gt_bboxes']
    img = results['img'].copy()
    out = ResizeWithPad(size=224)(results)
    np.testing.assert_array_equal(out['img'][44:178],
                                  mmcv.imresize(img, (224, 134), interpolation='bilinear'))
    assert 'gt_bboxes' not in out


def test_bad_size_raises():
    with pytest.raises(ValueError, match='size'):
        ResizeWithPad(size=(224, 0))
