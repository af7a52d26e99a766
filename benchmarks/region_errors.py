# Copyright (c) cllip_mm contributors. All rights reserved.
"""Which half of a phrase a model gets wrong: colour vs shape accuracy of zero-shot region
classification (GT boxes) on the synthetic demo set, overall and by box size.

    python benchmarks/region_errors.py CONFIG CHECKPOINT [--data-root data/cloc_demo/] \
        [--num-images 320] [--cfg-options ...]

Prints one JSON object. The phrases are "<colour> <shape>", so a wrong top-1 splits into a
wrong colour, a wrong shape or both. For a model with a grounding head it also splits the
grounding misses (IoU < 0.5 with the phrase's box): ``wrong_object`` (the box overlaps
another object more), ``right_object_loose_box`` (IoU 0.1-0.5 with the right object) and
``nowhere``.
"""
import argparse
import collections
import json

import torch
from mmdet.structures.bbox import bbox_overlaps
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.runner import Runner

from cllip_mm.utils import register_all_modules


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--data-root', default='data/cloc_demo/')
    parser.add_argument('--num-images', type=int, default=320)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()

    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.test_dataloader.dataset.data_root = args.data_root
    cfg.work_dir, cfg.load_from = 'work_dirs/region_errors', args.checkpoint
    runner = Runner.from_cfg(cfg)
    runner.load_or_resume()
    model, dataset = runner.model.eval(), runner.test_dataloader.dataset
    vocab = dataset.metainfo['classes']

    counts, ground = collections.Counter(), collections.Counter()
    by_size = collections.defaultdict(collections.Counter)
    ground_by_size = collections.defaultdict(collections.Counter)
    num = min(args.num_images, len(dataset))
    with torch.no_grad():
        for start in range(0, num, args.batch_size):
            batch = pseudo_collate([dataset[i] for i in range(start, min(start + args.batch_size, num))])
            for sample in model(**model.data_preprocessor(batch, False), mode='predict'):
                preds = sample.pred_regions.scores.argmax(1).tolist()
                h, w = sample.img_shape
                for pred, phrase, box in zip(preds, sample.gt_regions.phrases, sample.gt_regions.bboxes):
                    (pc, ps), (gc, gs) = vocab[pred].split(), phrase.split()
                    side = float(max(box[2] - box[0], box[3] - box[1])) / min(h, w)
                    size = 'small (<15%)' if side < 0.15 else 'medium (15-30%)' if side < 0.3 else 'large'
                    for c in (counts, by_size[size]):
                        c.update(regions=1, top1=pc == gc and ps == gs, colour=pc == gc, shape=ps == gs)
                if 'ground_bboxes' not in sample.pred_regions:
                    continue
                gt = torch.as_tensor(sample.gt_regions.bboxes, dtype=torch.float32)
                ious = bbox_overlaps(sample.pred_regions.ground_bboxes.float(), gt)  # [R, R]
                for k, row in enumerate(ious):
                    side = float(max(gt[k, 2] - gt[k, 0], gt[k, 3] - gt[k, 1])) / min(h, w)
                    size = 'small (<15%)' if side < 0.15 else 'medium (15-30%)' if side < 0.3 else 'large'
                    other = float(torch.cat([row[:k], row[k + 1:]]).max()) if len(row) > 1 else 0.0
                    outcome = ('hit' if row[k] >= 0.5 else 'wrong_object' if other > row[k]
                               else 'right_object_loose_box' if row[k] >= 0.1 else 'nowhere')
                    for c in (ground, ground_by_size[size]):
                        c.update(phrases=1, **{outcome: 1})
    rate = lambda c: {k: round(c[k] / c['regions'], 3) for k in ('top1', 'colour', 'shape')}  # noqa: E731
    outcomes = ('hit', 'wrong_object', 'right_object_loose_box', 'nowhere')
    ground_rate = lambda c: {k: round(c[k] / c['phrases'], 3) for k in outcomes}  # noqa: E731
    result = dict(checkpoint=args.checkpoint, regions=counts['regions'], **rate(counts),
                  by_box_side={k: dict(rate(c), regions=c['regions'])
                               for k, c in sorted(by_size.items())})
    if ground['phrases']:
        result['grounding'] = dict(ground_rate(ground), by_box_side={
            k: dict(ground_rate(c), phrases=c['phrases']) for k, c in sorted(ground_by_size.items())})
    print(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
