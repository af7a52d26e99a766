# Copyright (c) cllip_mm contributors. All rights reserved.
"""The benchmark datasets read the public layouts and name the bad record."""
import json
import os
import os.path as osp

import numpy as np
import pytest

from cllip_mm.datasets import (
    CocoRegionDataset,
    KarpathyRetrievalDataset,
    RegionTextDataset,
    ZeroShotImageDataset,
)
from cllip_mm.datasets.class_names import (
    COCO_CLASSES,
    IMAGENET_CLASSES,
    OPENAI_IMAGENET_TEMPLATES,
    TEMPLATE_SETS,
    get_templates,
    lvis_prompt_name,
)


def write(path, obj):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))
    return str(path)


# ---------------------------------------------------------------------------- names
def test_class_names_and_templates():
    assert len(COCO_CLASSES) == 80 and len(set(COCO_CLASSES)) == 80
    assert COCO_CLASSES[0] == 'person' and COCO_CLASSES[-1] == 'toothbrush'
    assert len(IMAGENET_CLASSES) == 1000
    assert IMAGENET_CLASSES[0] == 'tench' and IMAGENET_CLASSES[-1] == 'toilet paper'
    assert IMAGENET_CLASSES[657] == IMAGENET_CLASSES[744] == 'missile'  # as in OpenAI's list
    assert len(set(IMAGENET_CLASSES)) == 999
    assert len(OPENAI_IMAGENET_TEMPLATES) == len(set(OPENAI_IMAGENET_TEMPLATES)) == 80
    assert all(t.count('{}') == 1 for s in TEMPLATE_SETS.values() for t in s)
    assert get_templates('openai') is OPENAI_IMAGENET_TEMPLATES
    assert get_templates(['a {}.']) == ('a {}.', )
    for bad in ('nope', [], ['no slot'], ['{} {}']):
        with pytest.raises(ValueError):
            get_templates(bad)
    assert lvis_prompt_name('bow_(weapon)') == 'bow (weapon)'


def test_lvis_names_of_mmdet_match_the_count():
    """mmdet carries LVIS v1's 1203 names; the benchmark reads them from the annotation
    file, where they are the same strings."""
    from mmdet.datasets import LVISV1Dataset
    names = LVISV1Dataset.METAINFO['classes']
    assert len(names) == len(set(names)) == 1203
    assert len({lvis_prompt_name(n) for n in names}) == 1203  # still distinct as prompts


# ------------------------------------------------------------------------------ COCO
def coco_file(tmp_path, **overrides):
    data = dict(
        images=[dict(id=1, file_name='a.jpg', width=100, height=80),
                dict(id=2, coco_url='http://images.cocodataset.org/val2017/b.jpg', width=100,
                     height=80)],
        annotations=[dict(id=1, image_id=1, category_id=1, bbox=[10, 10, 20, 20], iscrowd=0),
                     dict(id=2, image_id=1, category_id=2, bbox=[90, 70, 30, 30], iscrowd=0),
                     dict(id=3, image_id=2, category_id=3, bbox=[0, 0, 5, 5], iscrowd=0),
                     dict(id=4, image_id=2, category_id=1, bbox=[0, 0, 50, 50], iscrowd=1)],
        categories=[dict(id=1, name='red_ball'), dict(id=2, name='cat'), dict(id=3, name='dog')])
    data.update(overrides)
    return write(tmp_path / 'instances.json', data)


def test_coco_region_dataset(tmp_path):
    ds = CocoRegionDataset(ann_file=coco_file(tmp_path), data_root=str(tmp_path),
                           data_prefix=dict(img='imgs/'), test_mode=True, serialize_data=False)
    assert ds.metainfo['classes'] == ('red ball', 'cat', 'dog')
    first, second = ds.get_data_info(0), ds.get_data_info(1)
    assert first['img_path'] == osp.join(str(tmp_path), 'imgs/', 'a.jpg')
    assert second['img_path'].endswith(osp.join('imgs', 'val2017/b.jpg'))  # from coco_url
    np.testing.assert_allclose(first['gt_bboxes'], [[10, 10, 30, 30], [90, 70, 100, 80]])
    assert first['gt_phrases'] == ['red ball', 'cat'] and first['vocabulary'] == ds.metainfo['classes']
    assert second['gt_phrases'] == ['dog']  # the crowd box is left out
    assert ds.skip_counts == {'crowd boxes': 1}

    # A class subset and a size filter: image 2 keeps no box and is dropped.
    ds = CocoRegionDataset(ann_file=coco_file(tmp_path), metainfo=dict(classes=('dog', 'red ball')),
                           min_box_area=30, test_mode=True)
    assert len(ds) == 1 and ds.get_data_info(0)['gt_phrases'] == ['red ball']
    assert ds.skip_counts['boxes of other classes'] == 1
    assert ds.skip_counts['boxes under 30 pixels'] == 1
    assert ds.skip_counts['images without boxes'] == 1

    with pytest.raises(ValueError, match=r"metainfo classes \['cow'\]"):
        CocoRegionDataset(ann_file=coco_file(tmp_path), metainfo=dict(classes=('cow', )))
    bad = coco_file(tmp_path, annotations=[dict(id=7, image_id=1, category_id=1, bbox=[1, 2, 3])])
    with pytest.raises(ValueError, match=r'instances.json: image id 1: annotation 7: field `bbox`'):
        CocoRegionDataset(ann_file=bad)


# --------------------------------------------------------------------------- Karpathy
def test_karpathy_layouts(tmp_path):
    flickr = write(tmp_path / 'dataset_flickr30k.json', dict(images=[
        dict(filename='1.jpg', split='test', sentences=[dict(raw='A dog .'), dict(raw=' a cat')]),
        dict(filename='2.jpg', split='train', sentences=[dict(raw='x')])]))
    ds = KarpathyRetrievalDataset(ann_file=flickr, data_prefix=dict(img='imgs'), serialize_data=False)
    assert len(ds) == 1
    info = ds.get_data_info(0)
    assert info['img_path'] == osp.join('imgs', '1.jpg') and info['captions'] == ['A dog .', 'a cat']

    albef = write(tmp_path / 'coco_karpathy_test.json',
                  [dict(image='val2014/x.jpg', caption=['one', 'two', 'three'])])
    ds = KarpathyRetrievalDataset(ann_file=albef, max_captions=2)
    assert ds.get_data_info(0)['captions'] == ['one', 'two']

    bad = write(tmp_path / 'bad.json', dict(images=[dict(filename='1.jpg', split='test',
                                                         sentences=[dict(tokens=['a'])])]))
    with pytest.raises(ValueError, match=r'bad.json: images\[0\]: field `sentences\[\]\.raw`'):
        KarpathyRetrievalDataset(ann_file=bad)
    with pytest.raises(ValueError, match="no image of split 'val'"):
        KarpathyRetrievalDataset(ann_file=flickr, split='val')


# --------------------------------------------------------------------------- ImageNet
def test_zero_shot_image_layouts(tmp_path):
    root = tmp_path / 'val'
    for wnid, files in (('n02', ['b.JPEG', 'notes.txt']), ('n01', ['a.JPEG'])):
        os.makedirs(root / wnid)
        for f in files:
            (root / wnid / f).write_bytes(b'')
    ds = ZeroShotImageDataset(data_prefix=dict(img=str(root)), serialize_data=False)
    assert ds.metainfo['classes'] == ('n01', 'n02')  # folder names when not 1000 classes
    assert [(osp.basename(d['img_path']), d['gt_label']) for d in ds.data_list] == [
        ('a.JPEG', 0), ('b.JPEG', 1)]
    with pytest.raises(ValueError, match='2 class directories but 3 class names'):
        ZeroShotImageDataset(data_prefix=dict(img=str(root)), classes=('a', 'b', 'c'))

    listing = write(tmp_path / 'meta' / 'val.txt', 'n01/a.JPEG 0\nn02/b.JPEG 999\n')
    ds = ZeroShotImageDataset(ann_file=listing, data_prefix=dict(img=str(root)), classes='imagenet')
    assert ds.get_data_info(1)['gt_label'] == 999
    assert ds.get_data_info(1)['vocabulary'] == IMAGENET_CLASSES
    bad = write(tmp_path / 'meta' / 'bad.txt', 'n01/a.JPEG 0\nn02/b.JPEG dog\n')
    with pytest.raises(ValueError, match=r'bad.txt:2: expected "<image path> <label>"'):
        ZeroShotImageDataset(ann_file=bad, classes='imagenet')


def test_zero_shot_image_1000_folders_get_imagenet_names(tmp_path):
    for i in range(1000):
        os.makedirs(tmp_path / f'n{i:08d}')
    with pytest.raises(ValueError, match='no image'):
        ZeroShotImageDataset(data_prefix=dict(img=str(tmp_path)))
    (tmp_path / 'n00000999' / 'x.jpg').write_bytes(b'')
    ds = ZeroShotImageDataset(data_prefix=dict(img=str(tmp_path)))
    assert ds.get_data_info(0)['gt_label'] == 999
    assert ds.metainfo['classes'] == IMAGENET_CLASSES


# ------------------------------------------------------------------------ ODVG, sample
def test_odvg_and_sampling(tiny_region_set, tmp_path):
    lines = [dict(filename='x.jpg', height=50, width=60, grounding=dict(
        caption='a dog and two cats', regions=[
            dict(bbox=[1, 2, 30, 40], phrase='a dog', tokens_positive=[[0, 5]]),
            dict(bbox=[[0, 0, 10, 10], [20, 20, 30, 30]], phrase='cats')])),
        dict(filename='y.jpg', height=50, width=60, grounding=dict(
            caption='c', regions=[dict(bbox=[5, 5, 5, 9], phrase='flat')]))]
    ann = write(tmp_path / 'g.jsonl', ''.join(json.dumps(line) + '\n' for line in lines))
    # RegionTextDataset reads ODVG natively (format detected per file).
    with pytest.raises(ValueError, match=r'g.jsonl:2: field `grounding.regions\[0\].bbox`.*degenerate'):
        RegionTextDataset(ann_file=ann, check_image_exists=False)
    ds = RegionTextDataset(ann_file=ann, check_image_exists=False, on_bad_record='skip',
                           serialize_data=False)
    info = ds.get_data_info(0)
    assert info['gt_phrases'] == ['a dog', 'cats', 'cats'] and info['caption'] == 'a dog and two cats'
    np.testing.assert_allclose(info['gt_bboxes'][2], [20, 20, 30, 30])
    assert ds.skip_counts == {'region: degenerate box': 1}

    full = RegionTextDataset(ann_file='annotations/val.jsonl', data_root=tiny_region_set,
                             serialize_data=False)
    paths = [d['img_path'] for d in full.data_list]
    picks = [[d['img_path'] for d in RegionTextDataset(
        ann_file='annotations/val.jsonl', data_root=tiny_region_set, sample_images=5,
        sample_seed=seed, serialize_data=False).data_list] for seed in (0, 0, 1)]
    assert len(picks[0]) == 5 and picks[0] == picks[1] != picks[2]
    assert picks[0] == [p for p in paths if p in picks[0]]  # file order
