# Copyright (c) cllip_mm contributors. All rights reserved.
"""Convert a region-text set (JSON Lines, docs/method.md section 5.1) into MMDetection's formats.

Made for the synthetic demo set (``generate_synthetic_regions.py``), whose phrases
are the category names ("red circle"), so that the downstream configs under
``configs/downstream/`` run end to end without downloads. Any region-text set in that
format converts the same way (its distinct phrases become the categories).

Example::

    python tools/dataset_converters/generate_synthetic_regions.py --out data/cloc_demo
    python tools/dataset_converters/synthetic_to_coco.py data/cloc_demo

Writes, under ``--out-dir`` (default ``<data-root>/mmdet``), for each split; image
paths are relative to ``<data-root>``:

- ``instances_{split}.json``: COCO detection, every category;
- ``instances_{split}_seen.json``: the same without the novel categories' boxes
  (OV-COCO's ``instances_train2017_seen_2.json``);
- ``ov_split.json``: ``classes`` / ``base_classes`` / ``novel_classes`` (the default
  novel set, :data:`DEFAULT_NOVEL_CLASSES`, holds every colour and every shape once,
  so novel classes are new compositions of seen words);
- ``{split}_od.jsonl`` + ``label_map.json``: ODVG detection (mmdet ``ODVGDataset``);
- ``{split}_vg.jsonl``: ODVG grounding of the captions (``tokens_positive`` of each
  region's phrase in the caption), GoldG-style;
- ``refexp_{split}_vg.jsonl``: ODVG grounding, one referring expression per line
  (MDETR's ``finetune_refcoco_train_vg.json`` layout);
- ``refexp_{split}.json``: MDETR-style RefCOCO annotations (one image entry per
  expression, with ``caption`` and ``dataset_name``), for ``MDETRStyleRefCocoDataset``
  and ``RefExpMetric``;
- ``proposals_{split}.pkl``: synthetic proposals (jittered ground truth with high
  scores plus random boxes with low scores) in the layout of
  ``BaseDetDataset(proposal_file=...)``.

Referring expressions: "the {phrase}" when the phrase is unique in the image, "the
{phrase} on the left / right" when it occurs twice (by box centre); regions whose
phrase occurs three times or more get none.
"""
import argparse
import json
import os
import os.path as osp
import pickle
import sys
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

try:
    import cllip_mm  # noqa: F401
except ImportError:  # run from a source checkout without `pip install -e .`
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from cllip_mm.datasets.region_text import RegionTextDataset  # noqa: E402

#: Novel classes of the synthetic OV split: each colour and each shape once.
DEFAULT_NOVEL_CLASSES = ('red star', 'green triangle', 'blue square', 'yellow circle',
                         'purple star', 'orange triangle', 'white square', 'black circle')
REFEXP_NAMES = ('refcoco', 'refcoco+', 'refcocog')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a region-text JSON Lines set into COCO / ODVG / RefCOCO files')
    parser.add_argument('data_root', help='root of the set (holds annotations/{split}.jsonl)')
    parser.add_argument('--out-dir', help='output directory (default: <data_root>/mmdet)')
    parser.add_argument('--splits', nargs='+', default=['train', 'val'])
    parser.add_argument('--ann-pattern', default='annotations/{split}.jsonl',
                        help='annotation file of a split, relative to data_root')
    parser.add_argument('--classes-file', default='classes.txt',
                        help='category names, one a line, relative to data_root; when '
                        'absent, the sorted distinct phrases of all splits')
    parser.add_argument('--novel-classes', nargs='*', default=None,
                        help='novel categories of the OV split (default: '
                        'DEFAULT_NOVEL_CLASSES when they are all categories, else none)')
    parser.add_argument('--refexp-name', default='refcoco', choices=REFEXP_NAMES,
                        help='dataset_name of the referring expressions (RefExpMetric)')
    parser.add_argument('--num-random-proposals', type=int, default=10)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def load_split(data_root: str, ann_file: str) -> List[dict]:
    """Validated records of a split (bad records raise, naming file, line and field)."""
    dataset = RegionTextDataset(
        ann_file=ann_file, data_root=data_root, on_bad_record='raise',
        check_image_exists=True, test_mode=True, serialize_data=False)
    records = []
    for info in dataset.data_list:
        records.append(dict(
            file_name=osp.relpath(info['img_path'], data_root).replace(os.sep, '/'),
            width=info['width'], height=info['height'], caption=info['caption'],
            bboxes=np.asarray(info['gt_bboxes'], np.float64).reshape(-1, 4),
            phrases=list(info['gt_phrases'])))
    return records


def to_coco(records: List[dict], classes: Sequence[str],
            keep: Optional[set] = None) -> dict:
    """COCO detection dict; ``keep`` limits the annotated categories (all if None)."""
    cat_id = {c: i + 1 for i, c in enumerate(classes)}
    images, annotations = [], []
    for img_id, rec in enumerate(records, start=1):
        images.append(dict(id=img_id, file_name=rec['file_name'], width=rec['width'],
                           height=rec['height']))
        for (x1, y1, x2, y2), phrase in zip(rec['bboxes'].tolist(), rec['phrases']):
            if keep is not None and phrase not in keep:
                continue
            w, h = x2 - x1, y2 - y1
            annotations.append(dict(id=len(annotations) + 1, image_id=img_id,
                                    category_id=cat_id[phrase], bbox=[x1, y1, w, h],
                                    area=w * h, iscrowd=0))
    return dict(images=images, annotations=annotations,
                categories=[dict(id=cat_id[c], name=c) for c in classes])


def to_odvg_detection(records: List[dict], classes: Sequence[str]) -> List[dict]:
    label = {c: i for i, c in enumerate(classes)}
    return [dict(filename=r['file_name'], height=r['height'], width=r['width'],
                 detection=dict(instances=[
                     dict(bbox=b, label=label[p], category=p)
                     for b, p in zip(r['bboxes'].tolist(), r['phrases'])]))
            for r in records]


def phrase_spans(caption: str, phrases: Sequence[str]) -> List[Optional[Tuple[int, int]]]:
    """Character span of each phrase in the caption, in order (the next occurrence
    after the previous match, else the first one), or None when absent."""
    spans, cursor, low = [], 0, caption.lower()
    for phrase in phrases:
        start = low.find(phrase.lower(), cursor)
        if start < 0:
            start = low.find(phrase.lower())
        if start < 0:
            spans.append(None)
            continue
        spans.append((start, start + len(phrase)))
        cursor = start + len(phrase)
    return spans


def to_odvg_caption_grounding(records: List[dict]) -> Tuple[List[dict], int]:
    out, dropped = [], 0
    for r in records:
        regions = []
        for box, phrase, span in zip(r['bboxes'].tolist(), r['phrases'],
                                     phrase_spans(r['caption'], r['phrases'])):
            if span is None:
                dropped += 1
                continue
            regions.append(dict(bbox=box, phrase=phrase, tokens_positive=[list(span)]))
        out.append(dict(filename=r['file_name'], height=r['height'], width=r['width'],
                        grounding=dict(caption=r['caption'], regions=regions)))
    return out, dropped


def referring_expressions(record: dict) -> List[Tuple[int, str]]:
    """(region index, expression) pairs of an image (see the module docstring)."""
    counts = Counter(record['phrases'])
    centres = (record['bboxes'][:, 0] + record['bboxes'][:, 2]) / 2
    out = []
    for i, phrase in enumerate(record['phrases']):
        if counts[phrase] == 1:
            out.append((i, f'the {phrase}'))
        elif counts[phrase] == 2:
            j = next(k for k, p in enumerate(record['phrases']) if p == phrase and k != i)
            side = 'left' if centres[i] < centres[j] or (centres[i] == centres[j] and i < j) else 'right'
            out.append((i, f'the {phrase} on the {side}'))
    return out


def to_refexp(records: List[dict], dataset_name: str) -> Tuple[List[dict], dict]:
    """ODVG REC lines and the MDETR-style RefCOCO COCO dict."""
    vg, images, annotations = [], [], []
    for original_id, r in enumerate(records, start=1):
        for region, expr in referring_expressions(r):
            x1, y1, x2, y2 = r['bboxes'][region].tolist()
            span = [[0, len(expr)]]
            vg.append(dict(filename=r['file_name'], height=r['height'], width=r['width'],
                           grounding=dict(caption=expr, regions=[dict(
                               bbox=[x1, y1, x2, y2], phrase=expr, tokens_positive=span)])))
            image_id = len(images) + 1
            images.append(dict(id=image_id, file_name=r['file_name'], height=r['height'],
                               width=r['width'], caption=expr, dataset_name=dataset_name,
                               original_id=original_id, tokens_positive=span))
            annotations.append(dict(id=image_id, image_id=image_id, category_id=1,
                                    bbox=[x1, y1, x2 - x1, y2 - y1],
                                    area=(x2 - x1) * (y2 - y1), iscrowd=0,
                                    phrase=r['phrases'][region]))
    coco = dict(images=images, annotations=annotations,
                categories=[dict(id=1, name='object')])
    return vg, coco


def make_proposals(records: List[dict], split_id: int, seed: int,
                   num_random: int) -> Dict[str, dict]:
    """Synthetic proposals keyed like ``BaseDetDataset.load_proposals`` expects
    (``<image dir name>/<file name>``): two jittered copies of every box with scores
    in [0.6, 1) and ``num_random`` random boxes with scores in [0, 0.4)."""
    proposals = {}
    for i, r in enumerate(records):
        rng = np.random.default_rng([seed, split_id, i])
        w, h = r['width'], r['height']
        boxes, scores = [], []
        for x1, y1, x2, y2 in np.repeat(r['bboxes'], 2, axis=0):
            bw, bh = x2 - x1, y2 - y1
            jitter = rng.uniform(-0.1, 0.1, 4) * [bw, bh, bw, bh]
            boxes.append([x1 + jitter[0], y1 + jitter[1], x2 + jitter[2], y2 + jitter[3]])
            scores.append(rng.uniform(0.6, 1.0))
        for _ in range(num_random):
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            bw, bh = rng.uniform(0.1, 0.5) * w, rng.uniform(0.1, 0.5) * h
            boxes.append([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
            scores.append(rng.uniform(0.0, 0.4))
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        order = np.argsort(-np.asarray(scores))
        key = '/'.join(r['file_name'].split('/')[-2:])
        proposals[key] = dict(bboxes=boxes[order], scores=np.asarray(scores, np.float32)[order])
    return proposals


def _dump_json(obj, path: str) -> None:
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f)


def _dump_jsonl(lines: List[dict], path: str) -> None:
    with open(path, 'w', encoding='utf-8') as f:
        f.writelines(json.dumps(line) + '\n' for line in lines)


def convert(data_root: str, out_dir: Optional[str] = None, splits: Sequence[str] = ('train', 'val'),
            ann_pattern: str = 'annotations/{split}.jsonl', classes_file: str = 'classes.txt',
            novel_classes: Optional[Sequence[str]] = None, refexp_name: str = 'refcoco',
            num_random_proposals: int = 10, seed: int = 0) -> dict:
    """Write every file of the module docstring; return a summary (paths, counts)."""
    out_dir = out_dir or osp.join(data_root, 'mmdet')
    os.makedirs(out_dir, exist_ok=True)
    records = {s: load_split(data_root, ann_pattern.format(split=s)) for s in splits}

    classes_path = osp.join(data_root, classes_file)
    if osp.isfile(classes_path):
        with open(classes_path, encoding='utf-8') as f:
            classes = [line.strip() for line in f if line.strip()]
    else:
        classes = sorted({p for recs in records.values() for r in recs for p in r['phrases']})
    for split, recs in records.items():
        for line, r in enumerate(recs, start=1):
            unknown = set(r['phrases']) - set(classes)
            if unknown:
                raise ValueError(f'{osp.join(data_root, ann_pattern.format(split=split))}: '
                                 f'record {line} ({r["file_name"]}): phrases {sorted(unknown)} '
                                 f'are not in the categories of {classes_path}')
    if novel_classes is None:
        novel_classes = DEFAULT_NOVEL_CLASSES if set(DEFAULT_NOVEL_CLASSES) <= set(classes) else ()
    missing = set(novel_classes) - set(classes)
    if missing:
        raise ValueError(f'--novel-classes {sorted(missing)} are not categories')
    novel = [c for c in classes if c in set(novel_classes)]
    base = [c for c in classes if c not in set(novel_classes)]

    summary = dict(out_dir=out_dir, classes=classes, base_classes=base, novel_classes=novel,
                   files={}, counts={})
    _dump_json(dict(classes=classes, base_classes=base, novel_classes=novel),
               osp.join(out_dir, 'ov_split.json'))
    _dump_json({str(i): c for i, c in enumerate(classes)}, osp.join(out_dir, 'label_map.json'))
    for split_id, (split, recs) in enumerate(records.items()):
        files = {}

        def path(name):
            files[name] = osp.join(out_dir, name)
            return files[name]

        coco = to_coco(recs, classes)
        _dump_json(coco, path(f'instances_{split}.json'))
        _dump_json(to_coco(recs, classes, keep=set(base)), path(f'instances_{split}_seen.json'))
        _dump_jsonl(to_odvg_detection(recs, classes), path(f'{split}_od.jsonl'))
        vg, dropped = to_odvg_caption_grounding(recs)
        _dump_jsonl(vg, path(f'{split}_vg.jsonl'))
        rec_vg, rec_coco = to_refexp(recs, refexp_name)
        _dump_jsonl(rec_vg, path(f'refexp_{split}_vg.jsonl'))
        _dump_json(rec_coco, path(f'refexp_{split}.json'))
        with open(path(f'proposals_{split}.pkl'), 'wb') as f:
            pickle.dump(make_proposals(recs, split_id, seed, num_random_proposals), f)
        summary['files'][split] = files
        summary['counts'][split] = dict(
            images=len(recs), boxes=len(coco['annotations']),
            referring_expressions=len(rec_vg), phrases_not_in_caption=dropped)
    return summary


def main(argv=None) -> dict:
    args = parse_args(argv)
    summary = convert(args.data_root, args.out_dir, args.splits, args.ann_pattern,
                      args.classes_file, args.novel_classes, args.refexp_name,
                      args.num_random_proposals, args.seed)
    print(f'{len(summary["classes"])} categories ({len(summary["base_classes"])} base, '
          f'{len(summary["novel_classes"])} novel: {summary["novel_classes"]})')
    for split, counts in summary['counts'].items():
        print(f'{split}: ' + ', '.join(f'{k} {v}' for k, v in counts.items()))
    print(f'wrote to {summary["out_dir"]}')
    return summary


if __name__ == '__main__':
    main()
