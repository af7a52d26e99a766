# Copyright (c) cllip_mm contributors. All rights reserved.
"""Training / evaluation data overlap, as tools/benchmark.py reads it off a checkpoint's
training config: the same file, the same image folder, and the known overlaps of public
sets (LVIS val in COCO train2017, Karpathy's COCO test in train2017, COCO / LVIS category
names, GRIT)."""
from mmengine.config import Config

from cllip_mm.utils.data_overlap import DataPaths, dataset_paths, overlaps, training_paths

COCO_REGION_CLS = dict(type='CocoRegionDataset', data_root='data/coco/',
                       ann_file='annotations/instances_val2017.json',
                       data_prefix=dict(img='val2017/'), pipeline=[dict(type='Resize')])
LVIS_REGION_CLS = dict(type='CocoRegionDataset', data_root='data/lvis_v1/',
                       ann_file='annotations/lvis_v1_val.json', data_prefix=dict(img=''))
KARPATHY = dict(type='KarpathyRetrievalDataset', data_root='data/coco/',
                ann_file='annotations/dataset_coco.json', data_prefix=dict(img=''))
GRIT = dict(type='RegionTextDataset', data_root='data/grit/', ann_file='grit_odvg.jsonl',
            data_prefix=dict(img='images/'))


def test_dataset_paths_of_wrappers_and_streams():
    cfg = dict(type='ConcatDataset', datasets=[
        dict(type='RegionTextDataset', data_root='/mnt/coco/',
             ann_file='annotations/coco2017_train_caption_vg.jsonl',
             data_prefix=dict(img='train2017/')),
        dict(type='RepeatDataset', times=2, dataset=dict(
            type='RegionTextDataset', data_root='data/vg/', ann_file='vg.jsonl')),
        dict(type='RegionTextShardStream', data_root='data/',
             sources=[dict(shards='grit/{00000..00003}.tar', weight=3.0)])])
    paths = dataset_paths(cfg)
    assert paths.ann_files == ('/mnt/coco/annotations/coco2017_train_caption_vg.jsonl',
                               'data/vg/vg.jsonl', 'data/grit/{00000..00003}.tar')
    assert paths.image_roots == ('/mnt/coco/train2017', 'data/grit')
    # no data_prefix, an empty root: no folder to compare
    assert dataset_paths(dict(ann_file='a.jsonl', data_prefix=dict(img=''))) == DataPaths(
        ('a.jsonl', ), ())


def test_same_file_and_folder_across_machines():
    # the checkpoint trained elsewhere (another root), on the evaluated file
    train = dataset_paths(dict(COCO_REGION_CLS, data_root='/cluster/datasets/coco/'))
    reasons = overlaps(train, dataset_paths(COCO_REGION_CLS))
    assert any('evaluated annotation file' in r and 'instances_val2017.json' in r
               for r in reasons), reasons
    assert any('same folder' in r and '/cluster/datasets/coco/val2017' in r for r in reasons)
    # a different file in another folder of the same set: nothing
    train = dataset_paths(dict(COCO_REGION_CLS, data_root='data/objects365/',
                               ann_file='annotations/instances_val2017.json'))
    assert not any('evaluated annotation file' in r for r in overlaps(
        train, dataset_paths(COCO_REGION_CLS)))
    region_text = dataset_paths(dict(data_root='data/region_text/',
                                     ann_file='annotations/train.jsonl',
                                     data_prefix=dict(img='images/')))
    for evaluated in (COCO_REGION_CLS, LVIS_REGION_CLS, KARPATHY, GRIT):
        assert overlaps(region_text, dataset_paths(evaluated)) == []


def test_known_overlaps_of_public_sets():
    coco_train = dataset_paths(dict(
        data_root='data/coco/', ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/')))
    lvis = overlaps(coco_train, dataset_paths(LVIS_REGION_CLS))
    assert any('LVIS v1 val images come from COCO train2017' in r for r in lvis), lvis
    karpathy = overlaps(coco_train, dataset_paths(KARPATHY))
    assert any("Karpathy's COCO test images" in r for r in karpathy), karpathy
    coco = overlaps(coco_train, dataset_paths(COCO_REGION_CLS))
    assert any('COCO category names' in r and 'instances_train2017.json' in r for r in coco)
    assert not any('LVIS' in r for r in coco)
    lvis_train = dataset_paths(dict(data_root='data/lvis_v1/',
                                    ann_file='annotations/lvis_v1_train.json'))
    assert any('LVIS category names' in r
               for r in overlaps(lvis_train, dataset_paths(LVIS_REGION_CLS)))
    grit_shards = dataset_paths(dict(data_root='data/', sources='grit/{00000..01999}.tar'))
    grit = overlaps(grit_shards, dataset_paths(GRIT))
    assert any('GRIT evaluation sample' in r for r in grit), grit


def test_training_paths_from_the_checkpoint_config():
    cfg = Config(dict(train_dataloader=dict(batch_size=2, dataset=dict(
        type='RegionTextDataset', data_root='data/coco/', ann_file='annotations/x.jsonl',
        data_prefix=dict(img='train2017/')))))
    loaded = dict(state_dict={}, meta=dict(cfg=cfg.pretty_text))
    assert training_paths(loaded) == DataPaths(('data/coco/annotations/x.jsonl', ),
                                               ('data/coco/train2017', ))
    assert training_paths(dict(state_dict={}, meta=dict())) is None
    assert training_paths(dict(meta=dict(cfg="model = dict(type='CLOC')\n"))) is None
