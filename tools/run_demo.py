# Copyright (c) cllip_mm contributors. All rights reserved.
"""The main job: train CLOC and its CLIP baseline on the embedded synthetic set and
print their validation metrics side by side.

    python tools/run_demo.py                       # data/cloc_demo, work_dirs/demo
    python tools/run_demo.py --seed 1 --data-seed 7 --min-objects 3 --max-objects 6 \
        --data-root data/cloc_demo_s7 --work-dir work_dirs/demo_s7

Steps: write the synthetic set (seeded) unless it is there, run ``tools/train.py`` on
the CLOC and CLIP demo configs (same data, schedule and budget), read the final
validation metrics from the MMEngine logs, print a table and JSON, save
``summary.json`` and a PNG of the ``loss_clip`` / ``loss_region`` curves.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from cllip_mm.utils.logs import last_metrics  # noqa: E402
from cllip_mm.utils.plot import plot_curves  # noqa: E402

CONFIGS = {
    'CLOC': 'configs/cloc/cloc_vit-tiny-p8_1x64_600it_synthetic.py',
    'CLIP': 'configs/clip/clip_vit-tiny-p8_1x64_600it_synthetic.py',
}
ROWS = [
    ('region_cls/top1', 'region classification top-1 (GT boxes, zero-shot)'),
    ('region_cls/mean_class_acc', 'region classification mean per-class acc'),
    ('retrieval/i2t_R@1', 'image->text R@1'),
    ('retrieval/t2i_R@1', 'text->image R@1'),
    ('retrieval/mean_R@1', 'image-text mean R@1'),
    ('retrieval/mean_R@5', 'image-text mean R@5'),
    ('grounding/acc@0.5', 'grounding acc (IoU>=0.5, text->box)'),
    ('grounding/whole_image_acc@0.5', 'grounding acc of "whole image" baseline'),
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-root', default='data/cloc_demo')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--seed', type=int, default=0, help='training seed')
    parser.add_argument('--data-seed', type=int, default=0, help='seed of the synthetic set')
    parser.add_argument('--min-objects', type=int, default=2)
    parser.add_argument('--max-objects', type=int, default=5)
    parser.add_argument('--num-train', type=int, default=4000)
    parser.add_argument('--num-val', type=int, default=500)
    parser.add_argument('--models', nargs='+', default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument('--reuse', action='store_true',
                        help='reuse a model whose work dir already holds final val metrics')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra overrides passed to every tools/train.py run')
    return parser.parse_args()


def ensure_data(args) -> None:
    if osp.exists(osp.join(args.data_root, 'annotations', 'val.jsonl')):
        print(f'[demo] using the synthetic set in {args.data_root}')
        return
    subprocess.run([
        sys.executable, osp.join(ROOT, 'tools/dataset_converters/generate_synthetic_regions.py'),
        '--out', args.data_root, '--seed', str(args.data_seed), '--num-train', str(args.num_train),
        '--num-val', str(args.num_val), '--min-objects', str(args.min_objects),
        '--max-objects', str(args.max_objects)
    ], check=True)


def train(name: str, args) -> dict:
    work_dir = osp.join(args.work_dir, name.lower())
    if args.reuse:
        try:
            return last_metrics(work_dir)
        except (FileNotFoundError, KeyError):
            pass
    data_root = args.data_root.rstrip('/') + '/'
    cmd = [
        sys.executable, osp.join(ROOT, 'tools/train.py'), osp.join(ROOT, CONFIGS[name]),
        '--work-dir', work_dir, '--cfg-options', f'randomness.seed={args.seed}',
        f'train_dataloader.dataset.data_root={data_root}', f'val_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}',
        f'model.tokenizer.path={osp.join(data_root, "tokenizer")}', *args.cfg_options
    ]
    print(f'[demo] training {name}: {" ".join(cmd)}', flush=True)
    start = time.time()
    subprocess.run(cmd, check=True)
    metrics = last_metrics(work_dir)
    metrics['train_minutes'] = round((time.time() - start) / 60, 2)
    return metrics


def main():
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    ensure_data(args)
    results = {name: train(name, args) for name in args.models}

    names = list(results)
    print('\n' + f'{"metric (val split)":<48}' + ''.join(f'{n:>10}' for n in names))
    for key, label in ROWS + [('train_minutes', 'training time (min)')]:
        cells = ''.join(f'{results[n].get(key, float("nan")):>10.3f}' for n in names)
        print(f'{label:<48}{cells}')
    summary = dict(data_root=args.data_root, seed=args.seed,
                   results={n: {k: results[n].get(k) for k, _ in ROWS + [('train_minutes', '')]}
                            for n in names})
    if 'CLOC' in results and 'CLIP' in results:
        summary['region_top1_margin'] = results['CLOC']['region_cls/top1'] - results['CLIP']['region_cls/top1']
        summary['mean_R@1_gap'] = results['CLOC']['retrieval/mean_R@1'] - results['CLIP']['retrieval/mean_R@1']
    with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary))

    png = plot_curves([osp.join(args.work_dir, n.lower()) for n in names], names,
                      ['loss_clip', 'loss_region'], osp.join(args.work_dir, 'curves.png'))
    print(f'[demo] summary: {osp.join(args.work_dir, "summary.json")}, curves: {png}')


if __name__ == '__main__':
    main()
