# Copyright (c) cllip_mm contributors. All rights reserved.
import json
import re

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from PIL import Image

import cllip_mm.datasets.region_text as region_text_module
from cllip_mm.datasets import RegionTextDataset, iter_json_lines
from cllip_mm.registry import DATASETS


def _write_image(path, w=40, h=30):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', (w, h), (10, 200, 30)).save(path)


def _record(image='images/a.png', w=40, h=30, regions=None, caption='a green thing'):
    if regions is None:
        regions = [dict(bbox=[1, 2, 11, 12], phrase='left cube', score=0.9),
                   dict(bbox=[5.5, 6.5, 20.0, 25.0], phrase='ball')]
    return dict(image=image, width=w, height=h, caption=caption, regions=regions)


def _write_ann(root, records, name='ann.jsonl'):
    """Records are dicts (dumped as JSON) or raw strings (written as they are)."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    (root / name).write_text('\n'.join(lines) + '\n')
    return name


@pytest.fixture
def root(tmp_path):
    _write_image(tmp_path / 'images' / 'a.png')
    _write_image(tmp_path / 'images' / 'b.png', w=50, h=60)
    return tmp_path


def _dataset(root, records, **kwargs):
    ann = _write_ann(root, records)
    return RegionTextDataset(ann_file=ann, data_root=str(root), **kwargs)


def test_parse_valid_records(root):
    records = [_record(), '', _record('images/b.png', 50, 60, regions=[], caption='empty')]
    ds = _dataset(root, records)
    assert len(ds) == 2
    info = ds.get_data_info(0)
    assert info['img_path'] == str(root / 'images' / 'a.png')
    assert (info['width'], info['height'], info['caption']) == (40, 30, 'a green thing')
    assert info['gt_bboxes'].dtype == np.float32 and info['gt_bboxes'].shape == (2, 4)
    np.testing.assert_allclose(info['gt_bboxes'], [[1, 2, 11, 12], [5.5, 6.5, 20, 25]])
    assert info['gt_phrases'] == ['left cube', 'ball']
    assert info['gt_scores'].dtype == np.float32
    np.testing.assert_allclose(info['gt_scores'], [0.9, 1.0])  # score defaults to 1
    assert info['ann_file'] == str(root / 'ann.jsonl') and info['ann_line'] == 1
    assert info['on_bad_record'] == 'raise' and 'vocabulary' not in info
    empty = ds.get_data_info(1)
    assert empty['ann_line'] == 3  # the blank line 2 still counts
    assert empty['gt_bboxes'].shape == (0, 4) and empty['gt_phrases'] == []
    # classes: the sorted distinct phrases of the file
    assert ds.metainfo['classes'] == ('ball', 'left cube')
    assert ds.get_cat_ids(0) == [0, 1]


def test_classes_from_metainfo_vocabulary_and_min_score(root):
    ds = DATASETS.build(dict(
        type='RegionTextDataset', ann_file=_write_ann(root, [_record()]),
        data_root=str(root), metainfo=dict(classes=['ball', 'cube', 'cone']),
        return_vocabulary=True, min_score=0.95))
    assert ds.metainfo['classes'] == ('ball', 'cube', 'cone')
    info = ds.get_data_info(0)
    assert info['vocabulary'] == ('ball', 'cube', 'cone')
    assert info['gt_phrases'] == ['ball']  # 'left cube' has score 0.9 < 0.95


def test_small_overshoot_is_clipped(root):
    regions = [dict(bbox=[-0.8, -1.0, 40.9, 31.0], phrase='all')]
    info = _dataset(root, [_record(regions=regions)]).get_data_info(0)
    np.testing.assert_allclose(info['gt_bboxes'], [[0, 0, 40, 30]])


def test_filter_empty_gt(root):
    records = [_record(), _record('images/b.png', 50, 60, regions=[])]
    assert len(_dataset(root, records, filter_cfg=dict(filter_empty_gt=True))) == 1
    assert len(_dataset(root, records, filter_cfg=dict(filter_empty_gt=True),
                        test_mode=True)) == 2


def _region_bad(bbox=None, phrase='x', **extra):
    """A record whose second region is bad; the first one is fine."""
    return _record(regions=[dict(bbox=[1, 1, 5, 5], phrase='ok'),
                            dict(bbox=bbox or [1, 1, 5, 5], phrase=phrase, **extra)])


# (record, field named in the error, reason counted with 'skip', level)
BAD_CASES = {
    'missing image file': (_record('images/missing.png'), 'image',
                           'record: missing image file'),
    'box outside image': (_region_bad([10, 10, 45, 20]), 'regions[1].bbox',
                          'region: box outside image'),
    'negative box': (_region_bad([-3, 0, 5, 5]), 'regions[1].bbox',
                     'region: box outside image'),
    'degenerate box': (_region_bad([10, 10, 10, 20]), 'regions[1].bbox',
                       'region: degenerate box'),
    'empty phrase': (_region_bad(phrase='  '), 'regions[1].phrase', 'region: empty phrase'),
    'phrase wrong type': (_region_bad(phrase=3), 'regions[1].phrase', 'region: wrong type'),
    'bbox wrong length': (_region_bad([1, 2, 3]), 'regions[1].bbox', 'region: wrong type'),
    'bbox wrong type': (_region_bad(['1', 2, 3, 4]), 'regions[1].bbox',
                        'region: wrong type'),
    # float boxes are tested at once by their sum: NaN / inf must still fail, a sum
    # that overflows must not make finite coordinates bad
    'bbox NaN': (_region_bad([1.0, 1.0, float('nan'), 5.0]), 'regions[1].bbox',
                 'region: wrong type'),
    'bbox infinite': (_region_bad([1.0, float('-inf'), 5.0, 5.0]), 'regions[1].bbox',
                      'region: wrong type'),
    'bbox huge floats': (_region_bad([1e308, 1.0, 1.7e308, 5.0]), 'regions[1].bbox',
                         'region: box outside image'),
    'score wrong type': (_region_bad(score='high'), 'regions[1].score',
                         'region: wrong type'),
    'missing bbox': (_record(regions=[dict(phrase='x')]), 'regions[0].bbox',
                     'region: missing field'),
    'width wrong type': (dict(_record(), width='40'), 'width', 'record: wrong type'),
    'missing caption': ({k: v for k, v in _record().items() if k != 'caption'}, 'caption',
                        'record: missing field'),
    'regions wrong type': (dict(_record(), regions={'bbox': [1, 1, 2, 2]}), 'regions',
                           'record: wrong type'),
}


@pytest.mark.parametrize('case', sorted(BAD_CASES))
def test_bad_record_raises_naming_file_line_field_image(root, case):
    record, field, _ = BAD_CASES[case]
    with pytest.raises(ValueError) as err:
        _dataset(root, [_record(), record])
    msg = str(err.value)
    assert f'{root / "ann.jsonl"}:2:' in msg  # the file and the 1-based line
    assert f'`{field}`' in msg
    assert 'images/' in msg  # the image


@pytest.mark.parametrize('bad,field', [('{"image": "images/a.png", ', '<record>'),
                                       ('[1, 2]', '<record>'),
                                       ('{"width": 40}', 'image')])
def test_unparsable_record_raises(root, bad, field):
    with pytest.raises(ValueError, match=re.escape(f'ann.jsonl:2: field `{field}`')):
        _dataset(root, [_record(), bad])


def test_bad_records_skipped_counted_and_logged(root, monkeypatch):
    logs = []
    monkeypatch.setattr(region_text_module, 'print_log',
                        lambda msg, **kwargs: logs.append((msg, kwargs)))
    records = [_record()] + [BAD_CASES[c][0] for c in sorted(BAD_CASES)] + ['not json']
    ds = _dataset(root, records, on_bad_record='skip')

    expected = {}
    for case in BAD_CASES.values():
        expected[case[2]] = expected.get(case[2], 0) + 1
    expected['record: invalid JSON'] = 1
    assert dict(ds.skip_counts) == expected
    # record-level problems drop the record, region-level ones only the region
    num_record_level = sum(v for k, v in expected.items() if k.startswith('record'))
    assert len(ds) == len(records) - num_record_level
    for i in range(1, len(ds)):
        info = ds.get_data_info(i)
        assert 'x' not in info['gt_phrases'] and info['gt_bboxes'].shape[1] == 4
    # one summary line with the counts
    assert len(logs) == 1
    msg, kwargs = logs[0]
    assert kwargs['logger'] == 'current'
    num_regions = sum(expected.values()) - num_record_level
    assert f'skipped {num_record_level} bad records and {num_regions} bad regions' in msg
    assert 'record: missing image file: 1' in msg
    assert ds.get_data_info(0)['on_bad_record'] == 'skip'


def test_no_image_check(root):
    ds = _dataset(root, [_record('images/missing.png')], check_image_exists=False)
    assert len(ds) == 1


def test_invalid_on_bad_record(root):
    with pytest.raises(ValueError, match='on_bad_record'):
        _dataset(root, [_record()], on_bad_record='ignore')


def _corrupt_dataset(root, **kwargs):
    init_default_scope('cllip_mm')
    (root / 'images' / 'bad.jpg').write_bytes(b'this is not a jpeg')
    records = [_record('images/bad.jpg'), _record()]
    return _dataset(root, records, pipeline=[dict(type='LoadImageFromFileChecked')],
                    **kwargs)


def test_unreadable_image_raises_at_load_time(root):
    ds = _corrupt_dataset(root)
    assert len(ds) == 2  # found only when loading
    with pytest.raises(ValueError) as err:
        ds[0]
    msg = str(err.value)
    assert f'{root / "ann.jsonl"}:1' in msg and 'bad.jpg' in msg
    assert ds[1]['img'].shape == (30, 40, 3)


def test_unreadable_image_skipped_in_training(root):
    ds = _corrupt_dataset(root, on_bad_record='skip')
    np.random.seed(0)
    for _ in range(3):
        assert ds[0]['img_path'].endswith('a.png')  # another sample was fetched
    assert ds.pipeline.transforms[0].num_skipped >= 3


def test_unreadable_image_left_out_at_test_time(root):
    # a test set cannot replace samples: the sample goes on, marked as left out
    test_ds = _corrupt_dataset(root, on_bad_record='skip', test_mode=True)
    bad = test_ds[0]
    assert bad['img_path'].endswith('bad.jpg')
    assert bad['skip_reason'] == 'unreadable image'
    assert bad['img'].shape == (30, 40, 3) and not bad['img'].any()  # recorded h, w
    good = test_ds[1]
    assert 'skip_reason' not in good and good['img'].any()
    assert test_ds.pipeline.transforms[0].num_skipped == 1
    # without 'skip' the test set raises, naming the file and the line
    with pytest.raises(ValueError, match=re.escape(f'{root / "ann.jsonl"}:1') + '.*bad.jpg'):
        _corrupt_dataset(root, test_mode=True)[0]


def _infos(ds):
    return [{k: (v.tolist() if isinstance(v, np.ndarray) else v)
             for k, v in ds.get_data_info(i).items() if k not in ('ann_file', 'sample_idx')}
            for i in range(len(ds))]


def test_bom_crlf_and_line_separators_in_strings(root):
    """A file written by a Windows tool (BOM, CRLF) reads as its clean twin; so does
    one with old Mac CR line ends. U+2028 / U+0085 inside a string do not split a
    record (str.splitlines would)."""
    records = [_record(caption='a\u2028b\x85c'), _record('images/b.png', 50, 60)]
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    (root / 'clean.jsonl').write_bytes(('\n'.join(lines) + '\n').encode('utf-8'))
    (root / 'windows.jsonl').write_bytes(
        b'\xef\xbb\xbf' + ('\r\n'.join(lines) + '\r\n').encode('utf-8'))
    (root / 'mac.jsonl').write_bytes(('\r'.join(lines)).encode('utf-8'))
    clean, windows, mac = (RegionTextDataset(ann_file=name, data_root=str(root))
                           for name in ('clean.jsonl', 'windows.jsonl', 'mac.jsonl'))
    assert len(clean) == 2 and clean.get_data_info(0)['caption'] == 'a\u2028b\x85c'
    assert _infos(windows) == _infos(clean) == _infos(mac)


def test_bom_crlf_errors_still_name_the_line(root):
    lines = [json.dumps(_record()), json.dumps(_record()), '{"image": ']
    (root / 'ann.jsonl').write_bytes(b'\xef\xbb\xbf' + '\r\n'.join(lines).encode())
    with pytest.raises(ValueError, match=re.escape('ann.jsonl:3: field `<record>`: invalid JSON')):
        RegionTextDataset(ann_file='ann.jsonl', data_root=str(root))


def test_invalid_utf8_and_utf16(root):
    good = json.dumps(_record()).encode()
    (root / 'ann.jsonl').write_bytes(good + b'\n' + good[:-2] + b'\xff"}\n' + good + b'\n')
    with pytest.raises(ValueError, match=r'ann.jsonl:2: .*not valid UTF-8.*column'):
        RegionTextDataset(ann_file='ann.jsonl', data_root=str(root))
    ds = RegionTextDataset(ann_file='ann.jsonl', data_root=str(root), on_bad_record='skip')
    assert len(ds) == 2 and dict(ds.skip_counts) == {'record: invalid encoding': 1}
    assert [b['line'] for b in ds.bad_records] == [2]
    assert ds.metainfo['num_skipped_records'] == 1
    (root / 'u16.jsonl').write_bytes(('\n'.join([json.dumps(_record())])).encode('utf-16'))
    with pytest.raises(ValueError, match='UTF-16'):
        RegionTextDataset(ann_file='u16.jsonl', data_root=str(root))


def test_iter_json_lines_yields_line_numbers(root):
    (root / 'x.jsonl').write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n\r\n[2]\r\nnope\r\n\xef\xbb\xbf3')
    errors = []
    assert list(iter_json_lines(str(root / 'x.jsonl'), on_error=errors.append)) == [
        (1, {'a': 1}), (3, [2]), (5, 3)]
    assert [(e.line_no, e.reason) for e in errors] == [(4, 'invalid JSON')]
