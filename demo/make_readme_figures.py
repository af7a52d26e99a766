# Copyright (c) cllip_mm contributors. All rights reserved.
"""Regenerate the README pictures from the demo checkpoints and the demo data.

    python demo/make_readme_figures.py \\
        --config configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py \\
        --weights work_dirs/demo/cloc/iter_1200.pth \\
        --baseline-config configs/clip/clip_vit-tiny-p8_1xb64-1200it_synthetic.py \\
        --baseline-weights work_dirs/demo/clip/iter_1200.pth \\
        --data-root data/cloc_demo --out-dir docs/figures

(after ``python tools/run_demo.py``, which writes the data and both checkpoints). On the
first ``--num`` images of the val split (with at least two regions) it writes

- ``region_labels.png``: each ground-truth box named by the model among the set's 32
  phrases (zero-shot), CLOC on top and, with ``--baseline-*``, the CLIP baseline below;
- ``grounding.png``: the box the grounding head finds for each ground-truth phrase;
- ``heatmap.png``: the region-text similarity map of each image's first phrase;

and prints how many labels / boxes are right on these panels. Every panel is drawn
by :class:`~cllip_mm.apis.RegionInferencer` with :class:`RegionTextVisualizer`,
exactly what ``demo/image_demo.py`` draws.
"""
import argparse
import os
import os.path as osp
import sys

import cv2
import mmcv
import numpy as np
from mmengine.config import Config

try:
    import cllip_mm  # noqa: F401
except ImportError:  # run from a source checkout without `pip install -e .`
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))
from cllip_mm.apis import RegionInferencer  # noqa: E402
from cllip_mm.registry import DATASETS  # noqa: E402
from cllip_mm.utils import register_all_modules  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Write the README pictures (docs/figures)')
    parser.add_argument('--config', default='configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py')
    parser.add_argument('--weights', default='work_dirs/demo/cloc/iter_1200.pth')
    parser.add_argument('--baseline-config', help='CLIP baseline config (adds a row to region_labels)')
    parser.add_argument('--baseline-weights', help='CLIP baseline checkpoint')
    parser.add_argument('--data-root', default='data/cloc_demo')
    parser.add_argument('--ann-file', default='annotations/val.jsonl')
    parser.add_argument('--num', type=int, default=4, help='images per picture')
    parser.add_argument('--start', type=int, default=0, help='skip the first images')
    parser.add_argument('--min-size', type=int, default=192, help='panel size (short side)')
    parser.add_argument('--out-dir', default='docs/figures')
    parser.add_argument('--device', default='cpu')
    return parser.parse_args(argv)


def pick_images(config: str, data_root: str, ann_file: str, num: int, start: int):
    """The data infos of the first ``num`` images (from ``start``) with >= 2 regions, and
    the set's phrase vocabulary."""
    cfg = Config.fromfile(config)
    dataset_cfg = cfg.val_dataloader.dataset
    dataset_cfg.update(data_root=data_root.rstrip('/') + '/', ann_file=ann_file)
    dataset = DATASETS.build(dataset_cfg)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    infos = [info for info in infos if len(info['gt_phrases']) >= 2][start:start + num]
    if len(infos) < num:
        raise SystemExit(f'{data_root}/{ann_file}: only {len(infos)} images with two regions')
    return infos, list(dataset.metainfo['classes'])


def tile(rows, titles=None, gap: int = 6, title_height: int = 22) -> np.ndarray:
    """Panels (RGB) in rows on white, every panel at the height of the tallest, with an
    optional title above each row."""
    height = max(p.shape[0] for row in rows for p in row)
    lines = []
    for r, row in enumerate(rows):
        panels = [p if p.shape[0] == height else
                  mmcv.imresize(p, (round(p.shape[1] * height / p.shape[0]), height)) for p in row]
        line = np.full((height, sum(p.shape[1] for p in panels) + gap * (len(panels) - 1), 3),
                       255, np.uint8)
        x = 0
        for p in panels:
            line[:, x:x + p.shape[1]] = p
            x += p.shape[1] + gap
        if titles:
            band = np.full((title_height, line.shape[1], 3), 255, np.uint8)
            cv2.putText(band, titles[r], (4, title_height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                        (0, 0, 0), 1, cv2.LINE_AA)
            line = np.concatenate([band, line])
        lines.append(line)
    width = max(line.shape[1] for line in lines)
    out = np.full((sum(line.shape[0] for line in lines) + gap * (len(lines) - 1), width, 3),
                  255, np.uint8)
    y = 0
    for line in lines:
        out[y:y + line.shape[0], :line.shape[1]] = line
        y += line.shape[0] + gap
    return out


def save(image: np.ndarray, path: str) -> None:
    """Write an RGB picture as a maximally compressed PNG."""
    mmcv.imwrite(image[..., ::-1], path, params=[cv2.IMWRITE_PNG_COMPRESSION, 9])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of [N, 4] xyxy boxes."""
    lt, rb = np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, 2:], b[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def region_label_row(inferencer, infos, classes):
    paths = [i['img_path'] for i in infos]
    out = inferencer(paths, task='classify', boxes=[i['gt_bboxes'] for i in infos],
                     vocabulary=classes, return_vis=True)
    correct = sum(p == g for pred, info in zip(out['predictions'], infos)
                  for p, g in zip(pred['label_names'], info['gt_phrases']))
    total = sum(len(i['gt_phrases']) for i in infos)
    return out['visualization'], correct, total


def main(argv=None) -> int:
    args = parse_args(argv)
    register_all_modules()
    infos, classes = pick_images(args.config, args.data_root, args.ann_file, args.num, args.start)
    paths = [i['img_path'] for i in infos]
    os.makedirs(args.out_dir, exist_ok=True)

    cloc = RegionInferencer(args.config, args.weights, device=args.device)
    cloc.visualizer.min_size = args.min_size
    rows, titles, summary = [], [], []
    panels, correct, total = region_label_row(cloc, infos, classes)
    rows.append(panels)
    titles.append(f'CLOC (Prompter): {correct}/{total} regions named right')
    summary.append(f'region labels, CLOC: {correct}/{total} right')
    if args.baseline_config:
        clip = RegionInferencer(args.baseline_config, args.baseline_weights, device=args.device)
        clip.visualizer.min_size = args.min_size
        panels, correct, total = region_label_row(clip, infos, classes)
        rows.append(panels)
        titles.append(f'CLIP baseline (crop and encode): {correct}/{total} regions named right')
        summary.append(f'region labels, CLIP baseline (second row): {correct}/{total} right')
    save(tile(rows, titles), osp.join(args.out_dir, 'region_labels.png'))

    out = cloc(paths, task='ground', texts=[i['gt_phrases'] for i in infos], return_vis=True)
    hits = sum(int((box_iou(np.asarray(p['bboxes']), i['gt_bboxes']) >= 0.5).sum())
               for p, i in zip(out['predictions'], infos))
    count = f'{hits}/{sum(len(i["gt_phrases"]) for i in infos)} boxes with IoU >= 0.5'
    summary.append(f'grounding, CLOC: {count}')
    save(tile([out['visualization']], [f'CLOC grounding head, box of each phrase: {count}']),
         osp.join(args.out_dir, 'grounding.png'))

    out = cloc(paths, task='similarity', texts=[i['gt_phrases'][:1] for i in infos],
               return_vis=True)
    summary.append('heat maps of: ' + ', '.join(repr(i['gt_phrases'][0]) for i in infos))
    save(tile([out['visualization']], ['CLOC: Prompter region-text similarity, a box around every '
                                       'patch']), osp.join(args.out_dir, 'heatmap.png'))

    for line in summary:
        print(line)
    print(f'wrote region_labels.png, grounding.png, heatmap.png to {args.out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
