# Copyright (c) cllip_mm contributors. All rights reserved.
"""Visual Genome region descriptions -> ODVG grounding records (JSON Lines).

Reads the public VG v1.2 files::

    region_descriptions.json   [{"id": 1, "regions": [{"region_id": 1382, "image_id": 1,
                                  "phrase": "the clock is green in colour",
                                  "x": 421, "y": 57, "width": 82, "height": 139}, ...]}, ...]
    image_data.json            [{"image_id": 1, "width": 800, "height": 600,
                                  "url": "https://cs.stanford.edu/people/rak248/VG_100K_2/1.jpg",
                                  "coco_id": null, "flickr_id": null}, ...]

and writes one ODVG grounding line per image (or per ``--max-phrases`` distinct phrases)
whose ``filename`` is the last two parts of the image URL (``VG_100K_2/1.jpg``, the
layout of the unzipped image archives). VG has no caption: the caption is the record's
distinct phrases joined with ``--sep`` ("the clock is green in colour. a white
building"), and each region's ``tokens_positive`` is its phrase's span in it. Regions
whose phrase repeats (case-insensitively) become one ODVG region with a list of boxes.
Boxes (``x, y, width, height``) become xyxy pixels clipped to the image; boxes empty
after clipping, narrower than 1 pixel, or with an empty phrase are dropped and counted.

    python tools/dataset_converters/vg2odvg.py data/vg/region_descriptions.json \\
        data/vg/image_data.json -o data/vg/vg_regions_vg.jsonl

Prints a JSON summary (records, regions, boxes, dropped per reason).
"""
import argparse
import json
import os
import os.path as osp
from collections import Counter
from typing import Dict, List, Optional


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('region_descriptions', help='region_descriptions.json')
    parser.add_argument('image_data', help='image_data.json')
    parser.add_argument('-o', '--out', required=True, help='output ODVG .jsonl')
    parser.add_argument('--sep', default='. ', help='separator of phrases in the caption')
    parser.add_argument('--max-phrases', type=int, default=0,
                        help='split an image into records of at most N distinct phrases '
                        '(0: one record per image)')
    return parser.parse_args(argv)


def _image_path(meta: dict) -> str:
    url = meta.get('url')
    if url:
        return '/'.join(url.rstrip('/').split('/')[-2:])
    return f'VG_100K/{meta["image_id"]}.jpg'


def convert(region_file: str, image_file: str, out: str, sep: str = '. ',
            max_phrases: int = 0) -> dict:
    with open(region_file, encoding='utf-8') as f:
        regions_per_image = json.load(f)
    with open(image_file, encoding='utf-8') as f:
        images = {m.get('image_id', m.get('id')): m for m in json.load(f)}
    dropped: Counter = Counter()
    lines: List[dict] = []
    num_boxes = 0
    for entry in regions_per_image:
        image_id = entry.get('id', entry.get('image_id'))
        meta = images.get(image_id)
        if meta is None:
            dropped['image not in image_data'] += 1
            continue
        w, h = int(meta['width']), int(meta['height'])
        groups: Dict[str, dict] = {}  # lower-cased phrase -> phrase, boxes
        for region in entry.get('regions', []):
            phrase = ' '.join(str(region.get('phrase', '')).split()).strip(' .')
            if not phrase:
                dropped['empty phrase'] += 1
                continue
            x, y = float(region['x']), float(region['y'])
            x1, y1 = min(max(x, 0.), w), min(max(y, 0.), h)
            x2 = min(max(x + float(region['width']), 0.), w)
            y2 = min(max(y + float(region['height']), 0.), h)
            if x2 - x1 < 1 or y2 - y1 < 1:
                dropped['box empty in the image'] += 1
                continue
            group = groups.setdefault(phrase.lower(), dict(phrase=phrase, boxes=[]))
            group['boxes'].append([x1, y1, x2, y2])
        chunks = list(groups.values())
        if not chunks:
            dropped['image without regions'] += 1
            continue
        size = max_phrases if max_phrases > 0 else len(chunks)
        for start in range(0, len(chunks), size):
            lines.append(_record(_image_path(meta), w, h, chunks[start:start + size], sep))
            num_boxes += sum(len(g['boxes']) for g in chunks[start:start + size])
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w', encoding='utf-8') as f:
        for line in lines:
            f.write(json.dumps(line) + '\n')
    return dict(out=out, records=len(lines), regions=sum(
        len(r['grounding']['regions']) for r in lines), boxes=num_boxes,
        dropped=dict(dropped))


def _record(filename: str, w: int, h: int, groups: List[dict], sep: str) -> dict:
    caption, regions = '', []
    for g in groups:
        if caption:
            caption += sep
        start = len(caption)
        caption += g['phrase']
        boxes = g['boxes']
        regions.append(dict(bbox=boxes[0] if len(boxes) == 1 else boxes,
                            phrase=g['phrase'],
                            tokens_positive=[[start, start + len(g['phrase'])]]))
    return dict(filename=filename, height=h, width=w,
                grounding=dict(caption=caption, regions=regions))


def main(argv: Optional[list] = None) -> dict:
    args = parse_args(argv)
    summary = convert(args.region_descriptions, args.image_data, args.out, args.sep,
                      args.max_phrases)
    print(json.dumps(summary))
    return summary


if __name__ == '__main__':
    main()
