# Copyright (c) cllip_mm contributors. All rights reserved.
"""Tiny fixtures in the original public layouts of COCO, Flickr30k Entities (MDETR's
GoldG files), RefCOCO (MDETR's files), GRIT (img2dataset tars), LVIS and Visual Genome.

Each writer fills ``root`` with real JPEG files and annotation files whose fields,
nesting and file names follow the public releases, including a few records that the
converters must drop (crowd boxes, boxes smaller than a pixel).
"""
import io
import json
import os
import tarfile
from typing import Dict, Tuple

import numpy as np
from PIL import Image


def write_jpeg(path: str, size: Tuple[int, int], seed: int = 0) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, quality=90)


def _dump(obj, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f)


# --------------------------------------------------------------------- COCO 2017
COCO_IMAGES = {139: (64, 48), 285: (56, 64), 632: (48, 48)}
COCO_CATS = [dict(supercategory='person', id=1, name='person'),
             dict(supercategory='animal', id=17, name='cat'),
             dict(supercategory='animal', id=18, name='dog'),
             dict(supercategory='accessory', id=28, name='umbrella')]


def write_coco(root: str) -> Dict[str, str]:
    """``train2017/*.jpg``, ``annotations/instances_train2017.json`` and
    ``annotations/captions_train2017.json`` (COCO 2017)."""
    images = []
    for i, (img_id, size) in enumerate(COCO_IMAGES.items()):
        name = f'{img_id:012d}.jpg'
        write_jpeg(os.path.join(root, 'train2017', name), size, seed=img_id)
        images.append(dict(license=1, file_name=name, coco_url=f'http://images.cocodataset.org/'
                           f'train2017/{name}', height=size[1], width=size[0],
                           date_captured='2013-11-14 17:02:52', flickr_url='', id=img_id))
    boxes = [  # image id, category id, xywh, iscrowd
        (139, 1, [2.5, 3.0, 20.0, 30.0], 0), (139, 18, [30.0, 10.0, 25.0, 20.0], 0),
        (139, 18, [5.0, 35.0, 10.0, 10.0], 0), (139, 1, [0.0, 0.0, 64.0, 48.0], 1),
        (285, 17, [10.0, 12.0, 30.0, 40.0], 0), (285, 28, [1.0, 1.0, 0.5, 10.0], 0),
        (632, 28, [4.0, 4.0, 40.0, 20.0], 0)]
    annotations = [dict(id=900 + i, image_id=img, category_id=cat, bbox=bbox,
                        area=bbox[2] * bbox[3], iscrowd=crowd, segmentation=[])
                   for i, (img, cat, bbox, crowd) in enumerate(boxes)]
    info = dict(description='COCO 2017 Dataset', version='1.0', year=2017)
    licenses = [dict(url='http://creativecommons.org/licenses/by-nc-sa/2.0/', id=1,
                     name='Attribution-NonCommercial-ShareAlike License')]
    _dump(dict(info=info, licenses=licenses, images=images, annotations=annotations,
               categories=COCO_CATS),
          os.path.join(root, 'annotations', 'instances_train2017.json'))
    captions = [(139, 'A person walking two dogs in a park.'),
                (139, 'Someone with their dogs outside.'),
                (285, 'A cat sitting next to an umbrella.'),
                (632, 'An open umbrella on the beach.')]
    _dump(dict(info=info, licenses=licenses, images=images,
               annotations=[dict(image_id=img, id=50 + i, caption=c)
                            for i, (img, c) in enumerate(captions)]),
          os.path.join(root, 'annotations', 'captions_train2017.json'))
    return dict(instances='annotations/instances_train2017.json',
                captions='annotations/captions_train2017.json')


# ----------------------------------------------------------------------- LVIS v1
def write_lvis(root: str) -> str:
    """``annotations/lvis_v1_train.json`` over the COCO ``train2017`` images (LVIS v1
    names images by ``coco_url``)."""
    write_coco(root)
    cats = [dict(id=1, name='aerosol_can', synset='aerosol.n.02', frequency='c',
                 synonyms=['aerosol_can', 'spray_can'], image_count=1,
                 instance_count=1),
            dict(id=3, name='airplane', synset='airplane.n.01', frequency='f',
                 synonyms=['airplane'], image_count=2, instance_count=2),
            dict(id=1203, name='zucchini', synset='zucchini.n.02', frequency='c',
                 synonyms=['zucchini', 'courgette'], image_count=1, instance_count=1)]
    images = [dict(id=img_id, width=w, height=h, license=1, flickr_url='',
                   coco_url=f'http://images.cocodataset.org/train2017/{img_id:012d}.jpg',
                   date_captured='', neg_category_ids=[], not_exhaustive_category_ids=[])
              for img_id, (w, h) in COCO_IMAGES.items()]
    boxes = [(139, 3, [1.0, 2.0, 30.0, 20.0]), (139, 1203, [40.0, 30.0, 10.0, 12.0]),
             (285, 1, [5.0, 5.0, 20.0, 20.0]), (632, 3, [0.0, 0.0, 0.4, 5.0])]
    anns = [dict(id=i + 1, image_id=img, category_id=cat, bbox=b, area=b[2] * b[3],
                 segmentation=[[b[0], b[1], b[0] + b[2], b[1], b[0] + b[2], b[1] + b[3]]])
            for i, (img, cat, b) in enumerate(boxes)]
    path = 'annotations/lvis_v1_train.json'
    _dump(dict(info={}, licenses=[], images=images, annotations=anns, categories=cats),
          os.path.join(root, path))
    return path


# ------------------------------------------------ Flickr30k Entities (MDETR GoldG)
def write_flickr30k_goldg(root: str) -> str:
    """``flickr30k_images/*.jpg`` and MDETR's
    ``mdetr_annotations/final_flickr_separateGT_train.json`` (one image entry per
    sentence, ``tokens_positive`` character spans per box)."""
    def spans(caption, *words):
        return [[caption.index(w), caption.index(w) + len(w)] for w in words]

    c1 = 'Two young guys with shaggy hair look at their hands'
    c2 = 'Two friends hang out in the yard'
    c3 = 'Several men in hard hats are operating a giant pulley'
    sents = [  # flickr id, size, caption, [(xywh, tokens_positive)]
        (1000092795, (64, 48), c1,  # two boxes for one phrase
         [([1, 2, 20, 40], spans(c1, 'Two young guys')),
          ([25, 3, 22, 40], spans(c1, 'Two young guys')),
          ([10, 30, 30, 15], spans(c1, 'their hands'))]),
        (1000092795, (64, 48), c2,  # non-contiguous tokens: a list phrase
         [([1, 2, 20, 40], spans(c2, 'friends', 'the yard')),
          ([0, 0, 0.5, 8], spans(c2, 'yard'))]),  # narrower than a pixel: dropped
        (10002456, (56, 64), c3,
         [([3, 3, 40, 50], spans(c3, 'Several men')),
          ([20, 20, 30, 30], spans(c3, 'a giant pulley'))]),
    ]
    images, anns = [], []
    for i, (fid, size, caption, boxes) in enumerate(sents):
        write_jpeg(os.path.join(root, 'flickr30k_images', f'{fid}.jpg'), size, seed=i)
        images.append(dict(file_name=f'{fid}.jpg', height=size[1], width=size[0], id=i,
                           caption=caption, dataset_name='flickr', tokens_negative=[],
                           sentence_id=i % 5, original_img_id=fid,
                           tokens_positive_eval=[t for _, t in boxes]))
        for bbox, tokens in boxes:
            anns.append(dict(area=bbox[2] * bbox[3], iscrowd=0, image_id=i, category_id=1,
                             id=len(anns), bbox=bbox, tokens_positive=tokens,
                             phrase_ids=len(anns)))
    path = 'mdetr_annotations/final_flickr_separateGT_train.json'
    _dump(dict(images=images, annotations=anns,
               categories=[dict(supercategory='object', id=1, name='object')]),
          os.path.join(root, path))
    return path


# ------------------------------------------------------ RefCOCO/+/g (MDETR files)
REFCOCO_FILES = ('finetune_refcoco_train.json', 'finetune_refcoco+_train.json',
                 'finetune_refcocog_train.json', 'finetune_grefcoco_train.json')


def write_refcoco(root: str) -> str:
    """``train2014/COCO_train2014_*.jpg`` and MDETR's four
    ``mdetr_annotations/finetune_{refcoco,refcoco+,refcocog,grefcoco}_train.json``
    (one image entry per referring expression)."""
    exps = [(9, (64, 48), 'the man on the left', [2, 3, 20, 40]),
            (9, (64, 48), 'bowl of oranges', [30, 20, 30, 25]),
            (25, (48, 56), 'giraffe in the back', [5, 5, 35, 45])]
    for img_id, size, _, _ in exps:
        write_jpeg(os.path.join(root, 'train2014', f'COCO_train2014_{img_id:012d}.jpg'),
                   size, seed=img_id)
    for k, name in enumerate(REFCOCO_FILES):
        images, anns = [], []
        for i, (img_id, size, caption, bbox) in enumerate(exps):
            images.append(dict(file_name=f'COCO_train2014_{img_id:012d}.jpg',
                               height=size[1], width=size[0], id=i, original_id=img_id,
                               caption=caption, dataset_name=name.split('_')[1],
                               tokens_negative=[[0, len(caption)]]))
            anns.append(dict(area=bbox[2] * bbox[3], iscrowd=0, image_id=i, category_id=1,
                             id=i, bbox=bbox, original_id=1000 + i,
                             tokens_positive=[[0, len(caption)]]))
        _dump(dict(images=images, annotations=anns,
                   categories=[dict(supercategory='person', id=1, name='person')]),
              os.path.join(root, 'mdetr_annotations', name))
    return 'mdetr_annotations'


# --------------------------------------------------------- GRIT (img2dataset tars)
GRIT_SAMPLES = [  # key, size, caption, ref_exps [start, end, x1, y1, x2, y2, score]
    ('000000000', (64, 48), 'A dog on a red sofa',
     [[0, 5, 0.1, 0.2, 0.5, 0.9, 0.8], [9, 19, 0.0, 0.5, 1.0, 1.0, 0.7]]),
    ('000000001', (48, 64), 'Two birds',
     [[0, 9, 0.2, 0.1, 0.8, 0.6, 0.9]]),
    ('000000002', (56, 56), 'Coffee',
     [[0, 6, 0.3, 0.3, 0.7, 0.7, 0.6]]),
]


def write_grit_img2dataset(root: str) -> str:
    """GRIT-20M as downloaded by img2dataset: ``grit_raw/00000.tar`` holding
    ``KEY.jpg``, ``KEY.json`` (the parquet columns plus img2dataset's fields) and
    ``KEY.txt``, next to ``00000.parquet``-less ``00000_stats.json``."""
    raw = os.path.join(root, 'grit_raw')
    os.makedirs(raw, exist_ok=True)
    with tarfile.open(os.path.join(raw, '00000.tar'), 'w') as tar:
        for i, (key, (w, h), caption, refs) in enumerate(GRIT_SAMPLES):
            buf = io.BytesIO()
            Image.fromarray(np.random.default_rng(i).integers(
                0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format='JPEG')
            meta = dict(url=f'http://example.com/{key}.jpg', caption=caption, id=i,
                        noun_chunks=refs, ref_exps=refs,
                        clip_similarity_vitb32=0.3, clip_similarity_vitl14=0.3,
                        key=key, status='success', error_message=None, width=w, height=h,
                        original_width=w * 2, original_height=h * 2, exif='{}',
                        sha256='0' * 64)
            for ext, data in (('jpg', buf.getvalue()), ('json', json.dumps(meta).encode()),
                              ('txt', caption.encode())):
                info = tarfile.TarInfo(f'{key}.{ext}')
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    _dump(dict(count=len(GRIT_SAMPLES), successes=len(GRIT_SAMPLES)),
          os.path.join(raw, '00000_stats.json'))
    return raw


# --------------------------------------------------------- Visual Genome v1.2
def write_visual_genome(root: str) -> Dict[str, str]:
    """``VG_100K/1.jpg``, ``VG_100K_2/2.jpg``, ``region_descriptions.json`` and
    ``image_data.json`` (VG v1.2)."""
    write_jpeg(os.path.join(root, 'VG_100K', '1.jpg'), (64, 48), seed=1)
    write_jpeg(os.path.join(root, 'VG_100K_2', '2.jpg'), (48, 64), seed=2)
    image_data = [
        dict(width=64, url='https://cs.stanford.edu/people/rak248/VG_100K/1.jpg', height=48,
             image_id=1, coco_id=None, flickr_id=None),
        dict(width=48, url='https://cs.stanford.edu/people/rak248/VG_100K_2/2.jpg',
             height=64, image_id=2, coco_id=None, flickr_id=None)]
    regions = [
        dict(id=1, regions=[
            dict(region_id=1382, width=20, height=15, image_id=1,
                 phrase='the clock is green in colour', y=5, x=3),
            dict(region_id=1383, width=30, height=40, image_id=1, phrase='shade is along the '
                 'street ', y=8, x=40),  # overshoots the right border: clipped
            dict(region_id=1384, width=10, height=10, image_id=1,
                 phrase='The clock is green in colour', y=30, x=30),  # same phrase
            dict(region_id=1385, width=10, height=10, image_id=1, phrase='  ', y=1, x=1),
            dict(region_id=1386, width=0, height=10, image_id=1, phrase='a pole', y=1, x=1)]),
        dict(id=2, regions=[
            dict(region_id=2001, width=40, height=50, image_id=2, phrase='man wearing a hat',
                 y=10, x=4)]),
    ]
    _dump(regions, os.path.join(root, 'region_descriptions.json'))
    _dump(image_data, os.path.join(root, 'image_data.json'))
    return dict(regions='region_descriptions.json', images='image_data.json')
