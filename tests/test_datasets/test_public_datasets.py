# Copyright (c) cllip_mm contributors. All rights reserved.
"""Public datasets into cllip_mm: original layout -> converter -> RegionTextDataset -> 3
iterations of the tiny CLOC config.

mmdet's shipped converters (``mmdet/.mim/tools/dataset_converters/``) run as they are,
as subprocesses; Visual Genome and COCO captions + instances go through ours.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from public_layouts import (
    GRIT_SAMPLES,
    write_coco,
    write_flickr30k_goldg,
    write_grit_img2dataset,
    write_lvis,
    write_refcoco,
    write_visual_genome,
)

from cllip_mm.datasets import RegionTextDataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
OUR_CONVERTERS = osp.join(REPO, 'tools', 'dataset_converters')


def mmdet_converter(name: str) -> str:
    import mmdet
    return osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'dataset_converters',
                    name)


def run(script: str, *args, cwd: str) -> str:
    proc = subprocess.run([sys.executable, script, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture
def train_3_iters(make_tiny_cloc_cfg):
    return lambda *args, **kwargs: _train_3_iters(make_tiny_cloc_cfg, *args, **kwargs)


def _train_3_iters(make_cfg, root: str, dataset: RegionTextDataset, **dataset_kwargs):
    """Build a tokenizer of the set's texts, train the tiny CLOC 3 iterations on it."""
    from mmengine.runner import Runner

    from cllip_mm.models.tokenizers.build_demo_tokenizer import build_word_level_tokenizer
    texts = [t for info in dataset.data_list for t in [info['caption'], *info['gt_phrases']]]
    build_word_level_tokenizer(texts, osp.join(root, 'tokenizer'))
    cfg = make_cfg(max_iters=3)
    cfg.model.tokenizer.path = osp.join(root, 'tokenizer')
    cfg.train_dataloader.dataset.update(data_root=root, **dataset_kwargs)
    cfg.train_dataloader.batch_size = 4
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint.update(interval=100, save_last=False)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 3
    for key in ('loss_clip', 'loss_region'):
        assert np.isfinite(runner.message_hub.get_scalar(f'train/{key}').current()), key


def _load(root, **kwargs) -> RegionTextDataset:
    return RegionTextDataset(data_root=root, serialize_data=False, **kwargs)


def _infos(ds):
    return {osp.basename(info['img_path']): info for info in ds.data_list}


def test_coco_detection_through_mmdet_coco2odvg(tmp_path, train_3_iters):
    root = str(tmp_path / 'coco')
    files = write_coco(root)
    run(mmdet_converter('coco2odvg.py'), files['instances'], '-d', 'coco', '-o',
        'annotations/instances_train2017_od.json', cwd=root)
    kwargs = dict(ann_file='annotations/instances_train2017_od.json',
                  data_prefix=dict(img='train2017/'),
                  label_map_file='annotations/coco2017_label_map.json',
                  caption_policy=dict(captions_file=files['captions']))
    ds = _load(root, **kwargs)
    assert len(ds.metainfo['classes']) == 80  # mmdet writes the whole COCO label map
    infos = _infos(ds)
    img = infos['000000000139.jpg']
    # crowd box dropped by the converter; xywh -> xyxy; names from the label map
    assert img['gt_phrases'] == ['person', 'dog', 'dog']
    np.testing.assert_allclose(img['gt_bboxes'][0], [2.5, 3.0, 22.5, 33.0])
    assert img['caption'] == 'A person walking two dogs in a park.'  # the captions file
    assert infos['000000000285.jpg']['gt_phrases'] == ['cat']  # 0.5-px box dropped
    train_3_iters(root, ds, **kwargs)


def test_coco_captions_and_instances_through_our_converter(tmp_path, train_3_iters):
    root = str(tmp_path / 'coco')
    files = write_coco(root)
    out = 'annotations/coco_caption_train2017_vg.jsonl'
    summary = json.loads(run(osp.join(OUR_CONVERTERS, 'coco_caption2odvg.py'),
                             files['captions'], files['instances'], '-o', out,
                             '--select', 'each', cwd=root))
    assert summary['records'] == 4 and summary['dropped'] == {
        'crowd box': 1, 'box empty in the image': 1}
    lines = [json.loads(line) for line in open(osp.join(root, out))]
    first = lines[0]['grounding']
    assert first['caption'] == 'A person walking two dogs in a park.'
    # one ODVG region per category, a list of boxes for the two dogs; plural matched
    assert [r['phrase'] for r in first['regions']] == ['person', 'dog']
    assert first['regions'][1]['bbox'] == [[30.0, 10.0, 55.0, 30.0], [5.0, 35.0, 15.0, 45.0]]
    start = first['caption'].index('dogs')
    assert first['regions'][1]['tokens_positive'] == [[start, start + 4]]
    assert lines[1]['grounding']['regions'][0]['tokens_positive'] == []  # no "person"
    kwargs = dict(ann_file=out, data_prefix=dict(img='train2017/'))
    ds = _load(root, **kwargs)
    assert len(ds) == 4
    assert ds.data_list[0]['gt_phrases'] == ['person', 'dog', 'dog']
    train_3_iters(root, ds, **kwargs)


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_flickr30k_entities_goldg_through_mmdet_goldg2odvg(tmp_path, train_3_iters):
    root = str(tmp_path / 'flickr30k')
    ann = write_flickr30k_goldg(root)
    out = 'mdetr_annotations/final_flickr_separateGT_train_vg.json'
    run(mmdet_converter('goldg2odvg.py'), ann, '-o', out, cwd=root)
    kwargs = dict(ann_file=out, data_prefix=dict(img='flickr30k_images/'))
    ds = _load(root, **kwargs)
    assert len(ds) == 3
    first, second = ds.data_list[0], ds.data_list[1]
    assert first['gt_phrases'] == ['Two young guys', 'Two young guys', 'their hands']
    # non-contiguous tokens give a list phrase in ODVG, joined here
    assert second['gt_phrases'] == ['friends the yard']
    train_3_iters(root, ds, **kwargs)


def test_refcoco_through_mmdet_refcoco2odvg(tmp_path, train_3_iters):
    root = str(tmp_path / 'refcoco')
    ann_dir = write_refcoco(root)
    run(mmdet_converter('refcoco2odvg.py'), ann_dir, '-o', ann_dir, cwd=root)
    kwargs = dict(ann_file='mdetr_annotations/finetune_refcoco_train_vg.json',
                  data_prefix=dict(img='train2014/'))
    ds = _load(root, **kwargs)
    assert [info['gt_phrases'] for info in ds.data_list] == [
        ['the man on the left'], ['bowl of oranges'], ['giraffe in the back']]
    assert ds.data_list[0]['caption'] == 'the man on the left'
    np.testing.assert_allclose(ds.data_list[1]['gt_bboxes'][0], [30, 20, 60, 45])
    for name in ('refcoco+', 'refcocog', 'grefcoco'):
        assert len(_load(root, ann_file=f'mdetr_annotations/finetune_{name}_train_vg.json',
                         data_prefix=dict(img='train2014/'))) == 3
    train_3_iters(root, ds, **kwargs)


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_lvis_through_mmdet_lvis2odvg(tmp_path, train_3_iters):
    root = str(tmp_path / 'coco')
    ann = write_lvis(root)
    run(mmdet_converter('lvis2odvg.py'), ann, '-o', 'annotations/lvis_v1_train_od.json',
        cwd=root)
    kwargs = dict(ann_file='annotations/lvis_v1_train_od.json',
                  label_map_file='annotations/lvis_v1_label_map.json')
    ds = _load(root, **kwargs)
    # lvis2odvg keeps train2017/ of coco_url in filename: no data_prefix
    infos = _infos(ds)
    assert ds.data_list[0]['img_path'].endswith('train2017/000000000139.jpg')
    assert infos['000000000139.jpg']['gt_phrases'] == ['airplane', 'zucchini']
    assert infos['000000000139.jpg']['caption'] == 'a photo of airplane and zucchini.'
    assert infos['000000000632.jpg']['gt_phrases'] == []  # 0.4-px box dropped
    assert ds.metainfo['classes'] == ('aerosol_can', 'airplane', 'zucchini')
    train_3_iters(root, ds, **kwargs)


def test_visual_genome_through_our_converter(tmp_path, train_3_iters):
    root = str(tmp_path / 'vg')
    files = write_visual_genome(root)
    out = 'annotations/vg_regions_vg.jsonl'
    summary = json.loads(run(osp.join(OUR_CONVERTERS, 'vg2odvg.py'), files['regions'],
                             files['images'], '-o', out, cwd=root))
    assert summary['records'] == 2 and summary['boxes'] == 4
    assert summary['dropped'] == {'empty phrase': 1, 'box empty in the image': 1}
    lines = [json.loads(line) for line in open(osp.join(root, out))]
    assert lines[0]['filename'] == 'VG_100K/1.jpg'
    assert lines[1]['filename'] == 'VG_100K_2/2.jpg'
    g = lines[0]['grounding']
    assert g['caption'] == 'the clock is green in colour. shade is along the street'
    for region in g['regions']:
        (s, e), = region['tokens_positive']
        assert g['caption'][s:e] == region['phrase']
    ds = _load(root, ann_file=out)
    info = ds.data_list[0]
    assert info['gt_phrases'] == ['the clock is green in colour'] * 2 + [
        'shade is along the street']
    np.testing.assert_allclose(info['gt_bboxes'][2], [40, 8, 64, 48])  # clipped
    # --max-phrases splits an image into records of at most N phrases
    summary = json.loads(run(osp.join(OUR_CONVERTERS, 'vg2odvg.py'), files['regions'],
                             files['images'], '-o', 'split.jsonl', '--max-phrases', '1',
                             cwd=root))
    assert summary['records'] == 3
    train_3_iters(root, ds, ann_file=out)


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_grit_img2dataset_through_mmdet_grit_converters(tmp_path, train_3_iters):
    """mmdet's grit_processing + grit2odvg functions, driven by grit_to_odvg.py (the
    scripts' own main()s write nothing / only two files, see its docstring)."""
    from transformers import BertTokenizer
    root = str(tmp_path / 'grit')
    raw = write_grit_img2dataset(root)
    words = sorted({w.lower() for _, _, c, _ in GRIT_SAMPLES for w in c.split()})
    vocab = tmp_path / 'vocab.txt'
    vocab.write_text('\n'.join(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', *words]))
    BertTokenizer(str(vocab)).save_pretrained(str(tmp_path / 'bert'))
    out = run(osp.join(OUR_CONVERTERS, 'grit_to_odvg.py'), raw, 'data', '--tokenizer',
              str(tmp_path / 'bert'), cwd=root)
    assert json.loads(out.strip().splitlines()[-1])['records'] == 3
    kwargs = dict(ann_file='data/grit20m_vg.json', data_prefix=dict(img='data/'))
    ds = _load(root, **kwargs)
    infos = _infos(ds)
    first = infos['000000000.jpg']
    assert first['img_path'].endswith('data/images/00000/000000000.jpg')
    assert first['caption'] == 'A dog on a red sofa'
    assert first['gt_phrases'] == ['A dog', 'a red sofa']
    # normalised GRIT boxes scaled to the image (64 x 48)
    np.testing.assert_allclose(first['gt_bboxes'][0], [6.4, 9.6, 32.0, 43.2], atol=1e-3)
    train_3_iters(root, ds, **kwargs)
