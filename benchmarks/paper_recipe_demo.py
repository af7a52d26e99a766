# Copyright (c) cllip_mm contributors. All rights reserved.
"""Collect the metrics of the paper's recipe on the demo and of its controls into one JSON.

Reads the MMEngine logs of the runs made by (see docs/region_effect.md, "The paper's recipe on
the demo"):

    python tools/run_demo.py --recipe paper --models PAPER --seed 0 --work-dir work_dirs/demo_paper_s0
    python tools/run_demo.py --recipe paper-ablations --models ROI NO_FILTER NO_GROUND M2 --shifts \\
        --work-dir work_dirs/ablation400 --cfg-options train_cfg.max_iters=400 train_cfg.val_interval=400
    python tools/test.py configs/cloc/cloc-paper_vit-tiny-p8_1xb64-1200it_synthetic.py \\
        ITER_400_CHECKPOINT --work-dir work_dirs/eval400/paper \\
        --cfg-options model.tokenizer.path=data/cloc_demo/tokenizer_t5

    python tools/run_demo.py --recipe paper-ablations --models ROI_NO_FILTER --seed 0 \\
        --work-dir work_dirs/ctl400 --cfg-options train_cfg.max_iters=400 train_cfg.val_interval=400
    python tools/run_demo.py --recipe paper-ablations --models BOX_GRID --seed S \\
        --shifts restyled small_crowded --work-dir work_dirs/grid_sS    # S = 0, 1

    python benchmarks/paper_recipe_demo.py [--paper work_dirs/demo_paper_s0/paper] \\
        [--paper-400 work_dirs/eval400/paper] [--ablations work_dirs/ablation400 ...] \\
        [--box-grid work_dirs/grid_s0/box_grid work_dirs/grid_s1/box_grid] [--out FILE]

A run that is missing is reported as such, not skipped silently. Prints one JSON object.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import perf_common as pc  # noqa: E402

from cllip_mm.utils.logs import last_metrics, test_metrics  # noqa: E402

KEYS = ('region_cls/top1', 'region_cls/mean_class_acc', 'retrieval/mean_R@1', 'retrieval/i2t_R@1',
        'retrieval/t2i_R@1', 'grounding/acc@0.5')
SHIFTS = ('small_crowded', 'restyled')
ABLATIONS = ('roi', 'no_filter', 'no_ground', 'm2', 'roi_no_filter')


def metrics(read, work_dir: str) -> dict:
    try:
        found = read(work_dir)
    except (FileNotFoundError, KeyError) as err:
        return dict(missing=f'{work_dir}: {err}')
    return {k: round(found[k], 4) for k in KEYS if found.get(k) is not None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--paper', default='work_dirs/demo_paper_s0/paper')
    parser.add_argument('--paper-400', default='work_dirs/eval400/paper')
    parser.add_argument('--ablations', nargs='+', default=['work_dirs/ablation400',
                                                            'work_dirs/ablation400b',
                                                            'work_dirs/ctl400'])
    parser.add_argument('--box-grid', nargs='+', default=['work_dirs/grid_s0/box_grid',
                                                          'work_dirs/grid_s1/box_grid'],
                        help='work dirs of the [ours] box-grid runs, one per seed')
    parser.add_argument('--out', help='also write the JSON object to this file')
    args = parser.parse_args()
    result = dict(benchmark='paper_recipe_demo', seed=0,
                  paper_1200it=metrics(last_metrics, args.paper),
                  paper_1200it_shifted={s: metrics(test_metrics, osp.join(args.paper, f'test_{s}'))
                                        for s in SHIFTS},
                  paper_400it=metrics(test_metrics, args.paper_400))
    for name in ABLATIONS:
        found = [d for d in args.ablations if osp.isdir(osp.join(d, name))]
        result[f'{name}_400it'] = (metrics(last_metrics, osp.join(found[0], name)) if found
                                   else dict(missing=f'no {name}/ under {args.ablations}'))
    for work_dir in args.box_grid:
        result[f'box_grid_1200it/{work_dir}'] = dict(
            val=metrics(last_metrics, work_dir),
            **{s: metrics(test_metrics, osp.join(work_dir, f'test_{s}')) for s in SHIFTS})
    pc.emit(result, args.out)


if __name__ == '__main__':
    main()
