# Copyright (c) cllip_mm contributors. All rights reserved.
"""Metrics of one checkpoint evaluated at several input sizes (the train/test resolution
discrepancy of FixRes, Touvron et al. 2019): how the demo's test size was chosen.

    python benchmarks/test_resolution.py CONFIG CHECKPOINT --sizes 96 112 128 144 160 \
        [--data-root data/cloc_demo] [--shifts small_crowded restyled] [--out JSON]

For each size S and each set (the val split of DATA_ROOT, then DATA_ROOT/shifts/<shift>),
runs ``tools/test.py CONFIG CHECKPOINT`` with the test pipeline's ``Resize`` set to S x S
(the ViT interpolates its position embedding) and collects the metrics. Prints one JSON
object. Choose the size on the val split only; the shifted sets are then held out.
"""
import argparse
import json
import os.path as osp
import subprocess
import sys
import tempfile

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from cllip_mm.utils.logs import test_metrics  # noqa: E402

KEYS = ('region_cls/top1', 'retrieval/mean_R@1', 'grounding/acc@0.5')


def evaluate(config: str, checkpoint: str, size: int, data_root: str, tokenizer_root: str,
             work_dir: str) -> dict:
    """``tools/test.py`` at ``size`` x ``size`` on ``data_root``'s val split."""
    cmd = [
        sys.executable, osp.join(ROOT, 'tools/test.py'), config, checkpoint, '--work-dir', work_dir,
        '--cfg-options', f'test_dataloader.dataset.pipeline.1.scale=({size},{size})',
        f'test_dataloader.dataset.data_root={data_root.rstrip("/")}/',
        f'model.tokenizer.path={osp.join(tokenizer_root, "tokenizer")}'
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f'{" ".join(cmd)} failed:\n{proc.stderr[-3000:]}')
    metrics = test_metrics(work_dir)
    return {k: metrics[k] for k in KEYS if k in metrics}


def choose(val: dict) -> dict:
    """The size whose val metrics (those of ``KEYS`` the model has) have the highest mean."""
    score = {size: sum(metrics.values()) / len(metrics) for size, metrics in val.items()}
    return dict(val_score=score, chosen_on_val=max(score, key=score.get),
                criterion=f'max over sizes of the mean of the val metrics {list(KEYS)} the model has')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--sizes', type=int, nargs='+', default=[96, 112, 128, 144, 160])
    parser.add_argument('--data-root', default='data/cloc_demo')
    parser.add_argument('--shifts', nargs='*', default=['small_crowded', 'restyled'])
    parser.add_argument('--out', help='also write the JSON here')
    args = parser.parse_args()
    sets = {'val': args.data_root}
    sets.update({s: osp.join(args.data_root, 'shifts', s) for s in args.shifts})
    results = {name: {} for name in sets}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            for name, root in sets.items():
                results[name][size] = evaluate(args.config, args.checkpoint, size, root,
                                               args.data_root, osp.join(tmp, f'{name}_{size}'))
                print(f'[test_resolution] {size} px, {name}: {results[name][size]}',
                      file=sys.stderr, flush=True)
    report = dict(benchmark='test_resolution', config=args.config, checkpoint=args.checkpoint,
                  sizes=args.sizes, results=results, **choose(results['val']))
    text = json.dumps(report)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')


if __name__ == '__main__':
    main()
