# Copyright (c) cllip_mm contributors. All rights reserved.
"""RegionTextDataset on mmdet's ODVG lines: grounding and detection records."""
import json
import re

import numpy as np
import pytest
from PIL import Image

from cllip_mm.datasets import RegionTextDataset

CAPTION = 'a woman holds a blue umbrella'


def _grounding(filename='images/a.jpg', w=40, h=30, regions=None, caption=CAPTION):
    if regions is None:
        regions = [dict(bbox=[1, 2, 11, 12], phrase='a woman', tokens_positive=[[0, 7]]),
                   dict(bbox=[[5, 6, 20, 25], [21, 3, 39, 29]], phrase='a blue umbrella',
                        tokens_positive=[[14, 29]])]
    return dict(filename=filename, height=h, width=w,
                grounding=dict(caption=caption, regions=regions))


def _detection(filename='images/b.jpg', w=50, h=60, instances=None):
    if instances is None:
        instances = [dict(bbox=[1, 1, 20, 30], label=1, category='dog'),
                     dict(bbox=[10, 10, 40, 50], label=0, category='person'),
                     dict(bbox=[2, 2, 9, 9], label=1, category='dog')]
    return dict(filename=filename, height=h, width=w, detection=dict(instances=instances))


@pytest.fixture
def root(tmp_path):
    (tmp_path / 'images').mkdir()
    Image.new('RGB', (40, 30)).save(tmp_path / 'images' / 'a.jpg')
    Image.new('RGB', (50, 60)).save(tmp_path / 'images' / 'b.jpg')
    (tmp_path / 'label_map.json').write_text(json.dumps({'0': 'person', '1': 'dog',
                                                         '2': 'cat'}))
    return tmp_path


def _dataset(root, records, **kwargs):
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    (root / 'ann.odvg.jsonl').write_text('\n'.join(lines) + '\n')
    return RegionTextDataset(ann_file='ann.odvg.jsonl', data_root=str(root), **kwargs)


def test_grounding_records(root):
    regions = [dict(bbox=[1, 2, 11, 12], phrase=['a', 'woman'], tokens_positive=[[0, 1],
                                                                                  [2, 7]]),
               dict(bbox=[[5, 6, 20, 25], [21, 3, 39, 29]], tokens_positive=[[14, 29]]),
               dict(bbox=[0, 0, 40, 30], phrase='the scene', score=0.5)]
    ds = _dataset(root, [_grounding(), _grounding(regions=regions)])
    info = ds.get_data_info(0)
    assert info['img_path'] == str(root / 'images' / 'a.jpg')
    assert (info['width'], info['height'], info['caption']) == (40, 30, CAPTION)
    # a region with a list of boxes becomes one region per box, same phrase
    assert info['gt_phrases'] == ['a woman', 'a blue umbrella', 'a blue umbrella']
    np.testing.assert_allclose(info['gt_bboxes'], [[1, 2, 11, 12], [5, 6, 20, 25],
                                                   [21, 3, 39, 29]])
    info = ds.get_data_info(1)
    # list phrase (GoldG) joined; missing phrase read from tokens_positive; score kept
    assert info['gt_phrases'] == ['a woman', 'a blue umbrella', 'a blue umbrella',
                                  'the scene']
    np.testing.assert_allclose(info['gt_scores'], [1, 1, 1, 0.5])
    assert ds.metainfo['classes'] == ('a blue umbrella', 'a woman', 'the scene')


def test_detection_records_label_map_and_template_caption(root):
    ds = _dataset(root, [_detection(), _detection(instances=[])],
                  label_map_file='label_map.json', return_vocabulary=True)
    info = ds.get_data_info(0)
    assert info['gt_phrases'] == ['dog', 'person', 'dog']
    np.testing.assert_allclose(info['gt_bboxes'][1], [10, 10, 40, 50])
    # default policy: template over the distinct categories in order of appearance
    assert info['caption'] == 'a photo of dog and person.'
    # classes: the label map in label order (also categories absent from the file)
    assert ds.metainfo['classes'] == ('person', 'dog', 'cat')
    assert info['vocabulary'] == ('person', 'dog', 'cat')
    assert ds.get_data_info(1)['gt_phrases'] == []
    # the label map decides the name, not `category`
    inst = [dict(bbox=[1, 1, 20, 30], label=2, category='dog')]
    assert _dataset(root, [_detection(instances=inst)], label_map_file='label_map.json'
                    ).get_data_info(0)['gt_phrases'] == ['cat']
    # without a label map, `category` names the instance
    ds = _dataset(root, [_detection()], caption_policy=dict(template='{}', category_sep='; ',
                                                            last_sep='; '))
    assert ds.get_data_info(0)['caption'] == 'dog; person'
    assert ds.metainfo['classes'] == ('dog', 'person')


def test_caption_policy_captions_file(root):
    captions = dict(images=[dict(id=7, file_name='b.jpg')],
                    annotations=[dict(id=1, image_id=7, caption='A dog and a man. '),
                                 dict(id=2, image_id=7, caption='two friends')])
    (root / 'captions.json').write_text(json.dumps(captions))
    other = _detection(filename='images/a.jpg', w=40, h=30,
                       instances=[dict(bbox=[1, 1, 5, 5], label=2)])
    kwargs = dict(label_map_file='label_map.json')
    ds = _dataset(root, [_detection(), other], **kwargs,
                  caption_policy=dict(captions_file='captions.json'))
    assert ds.get_data_info(0)['caption'] == 'A dog and a man.'  # matched by basename
    assert ds.get_data_info(1)['caption'] == 'a photo of cat.'  # no caption: template
    ds = _dataset(root, [_detection()], **kwargs,
                  caption_policy=dict(captions_file='captions.json', select='join',
                                      caption_sep=' | '))
    assert ds.get_data_info(0)['caption'] == 'A dog and a man. | two friends'
    with pytest.raises(ValueError, match='unknown keys'):
        _dataset(root, [_detection()], caption_policy=dict(captions='x'))
    with pytest.raises(ValueError, match="'select'"):
        _dataset(root, [_detection()], caption_policy=dict(select='random'))


def test_format_detected_per_file(root):
    native = dict(image='images/a.jpg', width=40, height=30, caption='x',
                  regions=[dict(bbox=[1, 2, 3, 4], phrase='thing')])
    assert _dataset(root, [native]).get_data_info(0)['gt_phrases'] == ['thing']
    # a native line in an ODVG file is an ODVG record without `filename`
    with pytest.raises(ValueError, match=re.escape('ann.odvg.jsonl:2: field `filename`')):
        _dataset(root, [_grounding(), native])


# (record, field named in the error, skip counter key)
BAD = {
    'no filename': (dict(height=30, width=40, grounding=dict(caption='', regions=[])),
                    'filename', 'record: missing field'),
    'caption not str': (_grounding(caption=3), 'grounding.caption', 'record: wrong type'),
    'regions not list': (dict(_grounding(), grounding=dict(caption='c', regions={})),
                         'grounding.regions', 'record: wrong type'),
    'no width': ({k: v for k, v in _grounding().items() if k != 'width'}, 'width',
                 'record: missing field'),
    'neither': (dict(filename='images/a.jpg', height=30, width=40), 'grounding',
                'record: missing field'),
    'missing image': (_grounding('images/nope.jpg'), 'image', 'record: missing image file'),
    'region bbox missing': (_grounding(regions=[dict(phrase='a')]),
                            'grounding.regions[0].bbox', 'region: missing field'),
    'degenerate box in a list': (
        _grounding(regions=[dict(bbox=[[1, 2, 5, 6], [5, 5, 5, 9]], phrase='p')]),
        'grounding.regions[0].bbox', 'region: degenerate box'),
    'box outside': (_grounding(regions=[dict(bbox=[1, 2, 99, 6], phrase='p')]),
                    'grounding.regions[0].bbox', 'region: box outside image'),
    'bad spans': (_grounding(regions=[dict(bbox=[1, 2, 5, 6], phrase='p',
                                           tokens_positive=[[3, 99]])]),
                  'grounding.regions[0].tokens_positive', 'region: bad tokens_positive'),
    'phrase not str': (_grounding(regions=[dict(bbox=[1, 2, 5, 6], phrase=5)]),
                       'grounding.regions[0].phrase', 'region: wrong type'),
    'empty phrase': (_grounding(regions=[dict(bbox=[1, 2, 5, 6], phrase='  ')]),
                     'grounding.regions[0].phrase', 'region: empty phrase'),
}
BAD_DET = {
    'unknown label': (_detection(instances=[dict(bbox=[1, 1, 5, 5], label=9)]),
                      'detection.instances[0].label', 'region: unknown label'),
    'label not int': (_detection(instances=[dict(bbox=[1, 1, 5, 5], label='dog')]),
                      'detection.instances[0].label', 'region: wrong type'),
    'instance bbox wrong': (_detection(instances=[dict(bbox=[1, 1, 5], label=0)]),
                            'detection.instances[0].bbox', 'region: wrong type'),
    'instances not list': (dict(_detection(), detection=dict(instances=3)),
                           'detection.instances', 'record: wrong type'),
}


@pytest.mark.parametrize('case', sorted(BAD) + sorted(BAD_DET))
def test_bad_record_raises_naming_file_line_field(root, case):
    record, field, _ = BAD.get(case) or BAD_DET[case]
    kwargs = dict(label_map_file='label_map.json') if case in BAD_DET else {}
    first = _detection() if case in BAD_DET else _grounding()
    with pytest.raises(ValueError) as err:
        _dataset(root, [first, record], **kwargs)
    assert f'ann.odvg.jsonl:2: field `{field}`' in str(err.value)


def test_bad_records_skipped_and_counted(root):
    records = [_grounding()] + [BAD[c][0] for c in sorted(BAD)]
    ds = _dataset(root, records, on_bad_record='skip')
    expected = {}
    for _, _, key in BAD.values():
        expected[key] = expected.get(key, 0) + 1
    assert dict(ds.skip_counts) == expected
    num_record_level = sum(v for k, v in expected.items() if k.startswith('record'))
    assert len(ds) == len(records) - num_record_level
    # the good box of the list survives its degenerate sibling
    phrases = [p for i in range(len(ds)) for p in ds.get_data_info(i)['gt_phrases']]
    assert phrases.count('p') == 1

    ds = _dataset(root, [_detection()] + [BAD_DET[c][0] for c in sorted(BAD_DET)],
                  label_map_file='label_map.json', on_bad_record='skip')
    expected = {}
    for _, _, key in BAD_DET.values():
        expected[key] = expected.get(key, 0) + 1
    assert dict(ds.skip_counts) == expected


def test_bad_label_map(root):
    (root / 'bad_map.json').write_text(json.dumps({'zero': 'person'}))
    with pytest.raises(ValueError, match=r"bad_map.json: key 'zero'"):
        _dataset(root, [_detection()], label_map_file='bad_map.json')
    # a detection record without category and without label map names the field
    with pytest.raises(ValueError, match=re.escape('field `detection.instances[0].category`')):
        _dataset(root, [_detection(instances=[dict(bbox=[1, 1, 5, 5], label=0)])])


def test_demo_val_split_as_odvg_gives_the_same_metrics(tiny_region_set, make_tiny_cloc_cfg,
                                                       tmp_path):
    """The same checkpoint, tested on the demo val split as JSON Lines and as ODVG
    (written by tools/dataset_converters/synthetic_to_coco.py)."""
    import importlib.util
    import os.path as osp

    from mmengine.runner import Runner
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    spec = importlib.util.spec_from_file_location(
        'synthetic_to_coco', osp.join(repo, 'tools/dataset_converters/synthetic_to_coco.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    summary = tool.convert(tiny_region_set, out_dir=str(tmp_path / 'mmdet'), splits=['val'])
    assert summary['counts']['val']['phrases_not_in_caption'] == 0

    cfg = make_tiny_cloc_cfg(max_iters=2)
    Runner.from_cfg(cfg).train()
    metrics = {}
    for name, ann_file in (('jsonl', 'annotations/val.jsonl'),
                           ('odvg', summary['files']['val']['val_vg.jsonl'])):
        test_cfg = cfg.copy()
        test_cfg.work_dir = str(tmp_path / f'test_{name}')
        test_cfg.load_from = osp.join(cfg.work_dir, 'iter_2.pth')
        test_cfg.test_dataloader.dataset.ann_file = ann_file
        metrics[name] = Runner.from_cfg(test_cfg).test()
    assert metrics['odvg'] == metrics['jsonl']
    assert {'region_cls/top1', 'grounding/acc@0.5'} <= set(metrics['jsonl'])
    assert any(k.startswith('retrieval/') for k in metrics['jsonl'])
