# Copyright (c) cllip_mm contributors. All rights reserved.
import numpy as np
import pytest
from PIL import Image

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
