# Copyright (c) cllip_mm contributors. All rights reserved.
"""Run a CLOC model on one image and draw what it does.

Examples::

    # name the objects in two boxes (xyxy pixels), choosing among the texts
    python demo/image_demo.py img.jpg configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py \\
        --weights work_dirs/demo/cloc/iter_1200.pth \\
        --boxes 10 12 60 70 70 20 120 90 --texts "red circle" "blue square" --out labels.png
    # find the box of each phrase
    python demo/image_demo.py img.jpg CONFIG --weights CKPT --texts "red circle" --out ground.png
    # where does a phrase live: heat map of region-text similarity
    python demo/image_demo.py img.jpg CONFIG --weights CKPT --texts "red circle" --task heatmap \\
        --out heat.png
    # an exported Hugging Face directory instead of config + checkpoint
    python demo/image_demo.py img.jpg hf_cloc_dir --texts "red circle" --out ground.png

The task defaults to 'classify' with ``--boxes`` (the texts are the vocabulary) and to
'ground' without. ``--pred-out`` also writes the predictions as JSON.
"""
import argparse
import os
import os.path as osp
import sys

import mmcv
import numpy as np
from mmengine.fileio import dump

try:
    import cllip_mm  # noqa: F401
except ImportError:  # run from a source checkout without `pip install -e .`
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))
from cllip_mm.apis import RegionInferencer  # noqa: E402

TASKS = {'classify': 'classify', 'ground': 'ground', 'heatmap': 'similarity'}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw CLOC region labels, grounded boxes or '
                                     'a region-text heat map on an image')
    parser.add_argument('image', help='image file (or file:// URL)')
    parser.add_argument('model', help='config file, or an exported Hugging Face directory')
    parser.add_argument('--weights', help='checkpoint (with a config file)')
    parser.add_argument('--boxes', type=float, nargs='+', default=None,
                        help='boxes to classify: x1 y1 x2 y2 [x1 y1 x2 y2 ...] in pixels')
    parser.add_argument('--texts', nargs='+', required=True,
                        help='vocabulary (classify), phrases (ground) or texts (heatmap)')
    parser.add_argument('--task', choices=sorted(TASKS), help='default: classify with --boxes, '
                        'else ground')
    parser.add_argument('--templates', nargs='+', default=None,
                        help="prompt templates for classify, e.g. 'a photo of a {}.'")
    parser.add_argument('--heatmap-mode', choices=('prompter', 'patch'), default='prompter')
    parser.add_argument('--window', type=float, default=1.0,
                        help='heat-map query box size, in patches')
    parser.add_argument('--heatmap-index', type=int, default=0,
                        help='which text of --texts the heat map shows')
    parser.add_argument('--score-thr', type=float, default=0., help='hide boxes scoring lower')
    parser.add_argument('--min-size', type=int, default=384,
                        help='enlarge smaller images (short side) before drawing')
    parser.add_argument('--out', default='result.png', help='the drawn picture')
    parser.add_argument('--pred-out', help='also write the predictions (JSON)')
    parser.add_argument('--device', default=None, help="'cpu', 'cuda', ... (default: available)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    task = args.task or ('classify' if args.boxes else 'ground')
    kwargs = {}
    if task == 'classify':
        if not args.boxes or len(args.boxes) % 4:
            raise SystemExit('--task classify needs --boxes x1 y1 x2 y2 [...] (4 numbers per box)')
        kwargs.update(boxes=[np.array(args.boxes, np.float32).reshape(-1, 4)],
                      vocabulary=args.texts, templates=args.templates)
    else:
        kwargs.update(texts=[args.texts])
        if task == 'heatmap':
            kwargs.update(heatmap_mode=args.heatmap_mode, window=args.window,
                          heatmap_index=args.heatmap_index)

    inferencer = RegionInferencer(args.model, args.weights, device=args.device)
    inferencer.visualizer.min_size = args.min_size
    result = inferencer([args.image], task=TASKS[task], return_vis=True,
                        score_thr=args.score_thr, **kwargs)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    mmcv.imwrite(result['visualization'][0][..., ::-1], args.out)
    pred = result['predictions'][0]
    if args.pred_out:
        dump({k: v for k, v in pred.items() if k not in ('embeds', 'maps')}, args.pred_out)
    if task == 'classify':
        for box, name, score in zip(pred['bboxes'], pred['label_names'], pred['scores']):
            print(f'{np.round(box, 1).tolist()} -> {name} ({score:.2f})')
    elif task == 'ground':
        for phrase, box, score in zip(pred['phrases'], pred['bboxes'], pred['scores']):
            print(f'{phrase!r} -> {np.round(box, 1).tolist()} (score {score:.2f})')
    else:
        for text, grid in zip(pred['texts'], pred['grid']):
            print(f'{text!r}: similarity in [{grid.min():.3f}, {grid.max():.3f}]')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
