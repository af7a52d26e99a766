# Copyright (c) cllip_mm contributors. All rights reserved.
import numpy as np
import pytest
from PIL import Image

from cllip_mm.datasets.transforms.loading import BadImageError
from cllip_mm.registry import TRANSFORMS


def _results(path, **extra):
    return dict(img_path=str(path), ann_file='/data/ann.jsonl', ann_line=7, **extra)


def test_loads_a_good_image_as_bgr(tmp_path):
    path = tmp_path / 'a.png'
    Image.new('RGB', (5, 3), (255, 0, 0)).save(path)
    load = TRANSFORMS.build(dict(type='LoadImageFromFileChecked'))
    out = load(_results(path))
    assert out['img'].shape == (3, 5, 3) and out['img'].dtype == np.uint8
    np.testing.assert_array_equal(out['img'][0, 0], [0, 0, 255])  # BGR
    assert out['img_shape'] == out['ori_shape'] == (3, 5)


@pytest.mark.parametrize('content', [b'not an image', b''])
def test_corrupt_image_error_names_file_and_record(tmp_path, content):
    path = tmp_path / 'bad.jpg'
    path.write_bytes(content)
    load = TRANSFORMS.build(dict(type='LoadImageFromFileChecked'))
    with pytest.raises(ValueError) as err:
        load(_results(path))
    msg = str(err.value)
    assert '/data/ann.jsonl:7' in msg and str(path) in msg


def test_missing_image_error(tmp_path):
    load = TRANSFORMS.build(dict(type='LoadImageFromFileChecked'))
    with pytest.raises(ValueError, match='/data/ann.jsonl:7.*missing.jpg'):
        load(_results(tmp_path / 'missing.jpg'))


def test_skip_returns_none_and_counts(tmp_path):
    path = tmp_path / 'bad.jpg'
    path.write_bytes(b'garbage')
    load = TRANSFORMS.build(dict(type='LoadImageFromFileChecked'))
    assert load(_results(path, on_bad_record='skip')) is None
    assert load(_results(path, on_bad_record='skip')) is None
    assert load.num_skipped == 2


def _sized(path, w, h, **extra):
    return _results(path, width=w, height=h, **extra)


def test_size_mismatch_names_file_line_and_both_sizes(tmp_path):
    path = tmp_path / 'a.png'
    Image.new('RGB', (40, 30)).save(path)
    load = TRANSFORMS.build(dict(type='LoadImageFromFileChecked'))
    assert load(_sized(path, 40, 30))['img'].shape == (30, 40, 3)
    with pytest.raises(BadImageError) as err:
        load(_sized(path, 64, 30))
    msg = str(err.value)
    assert err.value.reason == 'size mismatch'
    assert '/data/ann.jsonl:7: field `width`/`height`' in msg and str(path) in msg
    assert '(w=64, h=30)' in msg and '(w=40, h=30)' in msg
    # a uniformly rescaled copy is named as such
    with pytest.raises(BadImageError, match="size_mismatch='rescale'"):
        load(_sized(path, 80, 60))


def test_rescale_boxes_of_a_resized_copy(tmp_path):
    path = tmp_path / 'half.png'
    Image.new('RGB', (320, 241)).save(path)  # 640 x 481 recorded: rounding of a half
    load = TRANSFORMS.build(dict(type='LoadImageFromFileChecked', size_mismatch='rescale'))
    boxes = np.array([[10, 20, 110, 220], [0, 0, 640, 481]], np.float32)
    out = load(_sized(path, 640, 481, gt_bboxes=boxes.copy()))
    sx, sy = 320 / 640, 241 / 481
    np.testing.assert_allclose(out['gt_bboxes'], boxes * [sx, sy, sx, sy], rtol=1e-6)
    assert (out['width'], out['height']) == (320, 241) and load.num_rescaled == 1
    # another aspect ratio is never rescaled
    with pytest.raises(BadImageError, match='size mismatch|the record says'):
        load(_sized(path, 640, 640, gt_bboxes=boxes.copy()))


def test_exif_rotated_photo(tmp_path):
    """Stored 40x30 pixels with EXIF orientation 6 display as 30x40: records must give
    the displayed size; a record of the stored size is reported with the tag."""
    path = tmp_path / 'rotated.jpg'
    img = Image.new('RGB', (40, 30), (200, 10, 10))
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(path, exif=exif.tobytes())
    for backend in ('cv2', 'pillow'):
        load = TRANSFORMS.build(dict(type='LoadImageFromFileChecked',
                                     imdecode_backend=backend))
        assert load(_sized(path, 30, 40))['img'].shape == (40, 30, 3), backend
        with pytest.raises(BadImageError, match='swapped.*EXIF orientation 6'):
            load(_sized(path, 40, 30))


def test_skip_at_test_time_keeps_a_marked_placeholder(tmp_path):
    path = tmp_path / 'a.png'
    Image.new('RGB', (40, 30), (9, 9, 9)).save(path)
    load = TRANSFORMS.build(dict(type='LoadImageFromFileChecked'))
    assert load(_sized(path, 50, 30, on_bad_record='skip')) is None  # training
    out = load(_sized(path, 50, 30, on_bad_record='skip', test_mode=True))
    assert out['skip_reason'] == 'size mismatch'
    assert out['img'].shape == (30, 50, 3) and not out['img'].any()
    assert out['img_shape'] == out['ori_shape'] == (30, 50)
    (tmp_path / 'bad.jpg').write_bytes(b'')
    out = load(_sized(tmp_path / 'bad.jpg', 8, 6, on_bad_record='skip', test_mode=True))
    assert out['skip_reason'] == 'unreadable image' and out['img'].shape == (6, 8, 3)
    assert load.num_skipped == 3
