# Copyright (c) cllip_mm contributors. All rights reserved.
"""The synthetic generator: format, determinism, and loading through the pipeline."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from PIL import Image

from cllip_mm.datasets.synthetic import COLORS, all_phrases, generate_synthetic_regions
from cllip_mm.registry import DATASETS

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def _generate(out, seed=0, **kwargs):
    kwargs = dict(dict(num_train=24, num_val=6, min_objects=2, max_objects=4), **kwargs)
    return generate_synthetic_regions(str(out), seed=seed, **kwargs)


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp('demo')
    return out, _generate(out)


def _records(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_layout_and_records(demo):
    out, summary = demo
    assert summary['num_images'] == dict(train=24, val=6)
    assert summary['classes'] == all_phrases() and len(all_phrases()) == 32
    assert (out / 'classes.txt').read_text().split('\n')[:-1] == all_phrases()
    for split, num in (('train', 24), ('val', 6)):
        records = _records(out / 'annotations' / f'{split}.jsonl')
        assert len(records) == num
        assert sum(len(r['regions']) for r in records) == summary['num_regions'][split]
        for i, r in enumerate(records):
            assert r['image'] == f'images/{split}/{i:06d}.jpg'
            with Image.open(out / r['image']) as img:
                assert img.size == (r['width'], r['height'])
            assert 112 <= r['width'] <= 160 and 112 <= r['height'] <= 160
            assert 2 <= len(r['regions']) <= 4
            for region in r['regions']:
                x1, y1, x2, y2 = region['bbox']
                assert 0 <= x1 < x2 <= r['width'] and 0 <= y1 < y2 <= r['height']
                assert region['phrase'] in summary['classes'] and region['score'] == 1.0
                assert region['phrase'] in r['caption']
            assert r['caption'].endswith(' background')


def test_objects_are_visible_and_tightly_boxed(tmp_path):
    """PNG output (lossless): the shape's colour reaches every side of its box."""
    out = tmp_path / 'png'
    _generate(out, num_train=8, num_val=0, img_format='png', build_tokenizer=False,
              style_probs=(1.0, 0.0, 0.0))
    checked = 0
    for r in _records(out / 'annotations' / 'train.jsonl'):
        img = np.asarray(Image.open(out / r['image']).convert('RGB')).astype(int)
        for region in r['regions']:
            x1, y1, x2, y2 = (int(v) for v in region['bbox'])
            color = np.array(COLORS[region['phrase'].split()[0]])
            close = (np.abs(img[y1:y2, x1:x2] - color) <= 16).all(-1)
            if close.mean() < 0.3:
                continue  # mostly covered by a later object
            rows, cols = close.any(1), close.any(0)
            assert rows[0] and rows[-1] and cols[0] and cols[-1], region
            checked += 1
    assert checked >= 15


def test_deterministic_given_seed(demo, tmp_path):
    out, _ = demo
    again = tmp_path / 'again'
    _generate(again)
    for name in ('annotations/train.jsonl', 'annotations/val.jsonl',
                 'tokenizer/tokenizer.json', 'images/train/000003.jpg'):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    other = tmp_path / 'other'
    _generate(other, seed=1)
    assert (out / 'annotations/train.jsonl').read_bytes() != \
        (other / 'annotations/train.jsonl').read_bytes()


def test_tokenizer_covers_the_corpus(demo):
    from tokenizers import Tokenizer
    out, summary = demo
    tok = Tokenizer.from_file(summary['tokenizer'])
    unk = tok.token_to_id('<unk>')
    for r in _records(out / 'annotations' / 'val.jsonl'):
        ids = tok.encode(r['caption']).ids
        assert unk not in ids
    assert unk not in tok.encode('a photo of a purple triangle.').ids


def test_loads_through_dataset_and_pipeline(demo):
    out, _ = demo
    init_default_scope('cllip_mm')
    train = DATASETS.build(dict(
        type='RegionTextDataset', data_root=str(out), ann_file='annotations/train.jsonl',
        pipeline=[
            dict(type='LoadImageFromFileChecked'),
            dict(type='RandomResizedCropWithRegions', size=64, scale=(0.3, 1.0)),
            dict(type='RandomFlipWithPhrases', prob=0.5),
            dict(type='SampleRegions', max_regions=3),
            dict(type='PackRegionTextInputs'),
        ]))
    assert len(train) == 24
    for i in range(len(train)):
        item = train[i]
        assert item['inputs'].shape == (3, 64, 64) and item['inputs'].dtype == torch.uint8
        regions = item['data_samples'].gt_regions
        assert len(regions) <= 3 and regions.bboxes.shape == (len(regions), 4)
        assert (regions.bboxes >= 0).all() and (regions.bboxes <= 64).all()

    val = DATASETS.build(dict(
        type='RegionTextDataset', data_root=str(out), ann_file='annotations/val.jsonl',
        metainfo=dict(classes=str(out / 'classes.txt')), return_vocabulary=True,
        test_mode=True,
        pipeline=[
            dict(type='LoadImageFromFileChecked'),
            dict(type='Resize', scale=(96, 96)),
            dict(type='PackRegionTextInputs'),
        ]))
    assert val.metainfo['classes'] == tuple(all_phrases())
    batch = pseudo_collate([val[i] for i in range(len(val))])
    for img, sample in zip(batch['inputs'], batch['data_samples']):
        assert img.shape == (3, 96, 96)
        labels = sample.gt_regions.labels
        assert len(labels) >= 2 and (labels >= 0).all()
        assert [sample.vocabulary[i] for i in labels] == sample.gt_regions.phrases
        assert (sample.gt_regions.bboxes <= 96).all()


def test_command_line(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        'generate_synthetic_regions',
        osp.join(REPO, 'tools', 'dataset_converters', 'generate_synthetic_regions.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'cli'
    summary = tool.main(['--out', str(out), '--num-train', '5', '--num-val', '2',
                         '--seed', '3', '--min-objects', '1', '--max-objects', '2'])
    assert summary['num_images'] == dict(train=5, val=2)
    assert (out / 'tokenizer' / 'tokenizer.json').is_file()
    records = _records(out / 'annotations' / 'val.jsonl')
    assert all(1 <= len(r['regions']) <= 2 for r in records)
    assert 'Wrote' in capsys.readouterr().out


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='min_objects'):
        _generate(tmp_path, min_objects=3, max_objects=2)


def test_outlines_show_the_background_inside(tmp_path):
    """An outlined object has its colour on the box border and not at the box centre."""
    out = tmp_path / 'outline'
    _generate(out, num_train=8, num_val=0, img_format='png', build_tokenizer=False,
              style_probs=(0.0, 0.0, 1.0), rotate_prob=0.0, max_overlap=0.0)
    checked = 0
    for r in _records(out / 'annotations' / 'train.jsonl'):
        img = np.asarray(Image.open(out / r['image']).convert('RGB')).astype(int)
        for region in r['regions']:
            if region['phrase'].endswith('triangle') or region['phrase'].endswith('star'):
                continue  # thin shapes: the centre may lie on the outline
            x1, y1, x2, y2 = (int(v) for v in region['bbox'])
            color = np.array(COLORS[region['phrase'].split()[0]])
            close = (np.abs(img[y1:y2, x1:x2] - color) <= 16).all(-1)
            h, w = close.shape
            assert close[:, 0].any() and close[:, -1].any(), region
            assert not close[h // 2 - 1:h // 2 + 2, w // 2 - 1:w // 2 + 2].all(), region
            checked += 1
    assert checked >= 4


def test_default_object_scales_span_small_to_large():
    from cllip_mm.datasets.synthetic import render_sample
    sides = []
    for i in range(60):
        _, record = render_sample(np.random.default_rng([0, 0, i]))
        sides += [max(b[2] - b[0], b[3] - b[1]) / min(record['width'], record['height'])
                  for b in (region['bbox'] for region in record['regions'])]
    assert min(sides) < 0.15 and max(sides) > 0.4
