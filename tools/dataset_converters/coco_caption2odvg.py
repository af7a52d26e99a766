# Copyright (c) cllip_mm contributors. All rights reserved.
"""COCO captions + instances -> ODVG grounding records (JSON Lines).

Reads the public COCO 2017 annotation files (``annotations/captions_train2017.json`` and
``annotations/instances_train2017.json``) and writes ODVG grounding lines whose caption
is a human caption of the image and whose regions are its instance boxes, one ODVG
region per category present (phrase: the category name, ``bbox``: one box or the list
of its boxes). ``tokens_positive`` is the first case-insensitive, whole-word occurrence
of the category name (or its plural with "s"/"es") in the caption, else ``[]``
(``--unmentioned drop`` removes such regions instead; cllip_mm does not need the
spans, mmdet's grounding models do).

``--select first`` (default) takes the image's first caption, ``join`` joins all of them
with a space, ``each`` writes one line per caption. ``filename`` is COCO's
``file_name`` (``000000000139.jpg``): set ``data_prefix=dict(img='train2017/')``, as
mmdet's ``coco2odvg.py`` output expects. Crowd boxes, boxes narrower than 1 pixel or
outside the image are dropped and counted; images without a caption are dropped and
counted; images without boxes keep their caption (``filter_cfg.filter_empty_gt`` drops
them at training time if wanted).

    python tools/dataset_converters/coco_caption2odvg.py \\
        data/coco/annotations/captions_train2017.json \\
        data/coco/annotations/instances_train2017.json \\
        -o data/coco/annotations/coco2017_train_caption_vg.jsonl

Prints a JSON summary (records, regions, boxes, dropped per reason).
"""
import argparse
import json
import os
import os.path as osp
import re
from collections import Counter, defaultdict
from typing import List, Optional


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('captions', help='COCO captions_*.json')
    parser.add_argument('instances', help='COCO instances_*.json')
    parser.add_argument('-o', '--out', required=True, help='output ODVG .jsonl')
    parser.add_argument('--select', choices=('first', 'join', 'each'), default='first')
    parser.add_argument('--unmentioned', choices=('keep', 'drop'), default='keep',
                        help='regions whose category is not in the caption')
    return parser.parse_args(argv)


def category_span(caption: str, name: str) -> List[List[int]]:
    """``[[start, end]]`` of ``name`` (or name + s / es) as whole words in ``caption``."""
    match = re.search(r'\b' + re.escape(name) + r'(?:e?s)?\b', caption, re.IGNORECASE)
    return [[match.start(), match.end()]] if match else []


def convert(captions_file: str, instances_file: str, out: str, select: str = 'first',
            unmentioned: str = 'keep') -> dict:
    with open(captions_file, encoding='utf-8') as f:
        cap = json.load(f)
    with open(instances_file, encoding='utf-8') as f:
        ins = json.load(f)
    names = {c['id']: c['name'] for c in ins['categories']}
    captions = defaultdict(list)
    for ann in sorted(cap['annotations'], key=lambda a: a['id']):
        captions[ann['image_id']].append(' '.join(ann['caption'].split()))
    boxes = defaultdict(dict)  # image id -> category name -> boxes (insertion order)
    dropped: Counter = Counter()
    images = {img['id']: img for img in ins['images']}
    for ann in ins['annotations']:
        img = images.get(ann['image_id'])
        if img is None:
            dropped['box of an unknown image'] += 1
            continue
        if ann.get('iscrowd', 0) or ann.get('ignore', False):
            dropped['crowd box'] += 1
            continue
        x, y, w, h = ann['bbox']
        x1, y1 = max(x, 0), max(y, 0)
        x2, y2 = min(x + w, img['width']), min(y + h, img['height'])
        if w < 1 or h < 1 or x2 - x1 < 1 or y2 - y1 < 1:
            dropped['box empty in the image'] += 1
            continue
        boxes[ann['image_id']].setdefault(names[ann['category_id']], []).append(
            [x1, y1, x2, y2])

    lines, num_boxes = [], 0
    for img in sorted(ins['images'], key=lambda i: i['id']):
        texts = captions.get(img['id'])
        if not texts:
            dropped['image without caption'] += 1
            continue
        if select == 'first':
            texts = texts[:1]
        elif select == 'join':
            texts = [' '.join(texts)]
        for caption in texts:
            regions = []
            for name, bxs in boxes[img['id']].items():
                span = category_span(caption, name)
                if not span and unmentioned == 'drop':
                    dropped['region not in caption'] += 1
                    continue
                regions.append(dict(bbox=bxs[0] if len(bxs) == 1 else bxs, phrase=name,
                                    tokens_positive=span))
                num_boxes += len(bxs)
            lines.append(dict(filename=img['file_name'], height=img['height'],
                              width=img['width'],
                              grounding=dict(caption=caption, regions=regions)))
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w', encoding='utf-8') as f:
        for line in lines:
            f.write(json.dumps(line) + '\n')
    return dict(out=out, records=len(lines),
                regions=sum(len(r['grounding']['regions']) for r in lines),
                boxes=num_boxes, dropped=dict(dropped))


def main(argv: Optional[list] = None) -> dict:
    args = parse_args(argv)
    summary = convert(args.captions, args.instances, args.out, args.select, args.unmentioned)
    print(json.dumps(summary))
    return summary


if __name__ == '__main__':
    main()
