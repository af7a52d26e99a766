# Copyright (c) cllip_mm contributors. All rights reserved.
"""Write a region-text or ODVG annotation file as webdataset-style tar shards.

Every record that ``RegionTextDataset`` accepts becomes one sample in the img2dataset
layout, ``KEY.jpg`` (the original image bytes; ``.png`` etc. keep their extension) +
``KEY.json`` (the validated record: ``image``, ``width``, ``height``, ``caption``,
``regions`` with xyxy pixel ``bbox``, ``phrase``, ``score``), ``KEY`` being the record's
index (``000000042``), ``--samples-per-shard`` samples per shard::

    python tools/dataset_converters/region_text2shards.py data/cloc_demo \\
        annotations/train.jsonl data/cloc_demo/shards/train-%05d.tar [--samples-per-shard 1000]
    # ODVG detection: --label-map-file annotations/coco2017_label_map.json \\
    #     --data-prefix train2017/ --captions-file annotations/captions_train2017.json

Bad records fail (naming file, line and field) unless ``--skip-bad`` (counted). Prints a
JSON summary. Read the shards with ``RegionTextShardStream`` (brace pattern
``shards/train-{00000..00003}.tar``).
"""
import argparse
import json
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

from cllip_mm.datasets import RegionTextDataset  # noqa: E402
from cllip_mm.datasets.tar_shards import ShardWriter  # noqa: E402


def convert(data_root: str, ann_file: str, pattern: str, samples_per_shard: int = 1000,
            data_prefix: str = '', label_map_file=None, captions_file=None,
            skip_bad: bool = False) -> dict:
    dataset = RegionTextDataset(
        ann_file=ann_file, data_root=data_root, data_prefix=dict(img=data_prefix),
        label_map_file=label_map_file, serialize_data=False, test_mode=True,
        on_bad_record='skip' if skip_bad else 'raise',
        caption_policy=dict(captions_file=captions_file) if captions_file else None)
    with ShardWriter(pattern, samples_per_shard) as writer:
        for i, info in enumerate(dataset.data_list):
            ext = osp.splitext(info['img_path'])[1].lstrip('.').lower() or 'jpg'
            key = f'{i:09d}'
            with open(info['img_path'], 'rb') as f:
                image = f.read()
            record = dict(image=f'{key}.{ext}', width=info['width'], height=info['height'],
                          caption=info['caption'],
                          regions=[dict(bbox=[float(v) for v in box], phrase=phrase,
                                        score=float(score))
                                   for box, phrase, score in zip(
                                       info['gt_bboxes'].tolist(), info['gt_phrases'],
                                       info['gt_scores'].tolist())])
            writer.write(key, {ext: image, 'json': record})
    return dict(shards=writer.paths, samples=len(dataset),
                skipped=dict(dataset.skip_counts))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data_root')
    parser.add_argument('ann_file', help='relative to data_root')
    parser.add_argument('pattern', help="output shards, e.g. 'shards/train-%%05d.tar'")
    parser.add_argument('--samples-per-shard', type=int, default=1000)
    parser.add_argument('--data-prefix', default='', help='image folder (ODVG)')
    parser.add_argument('--label-map-file')
    parser.add_argument('--captions-file')
    parser.add_argument('--skip-bad', action='store_true')
    args = parser.parse_args(argv)
    summary = convert(args.data_root, args.ann_file, args.pattern, args.samples_per_shard,
                      args.data_prefix, args.label_map_file, args.captions_file,
                      args.skip_bad)
    print(json.dumps(dict(summary, shards=len(summary['shards']))))
    return summary


if __name__ == '__main__':
    main()
