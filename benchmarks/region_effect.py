# Copyright (c) cllip_mm contributors. All rights reserved.
"""The region effect across seeds and data: CLOC vs its CLIP baseline, side by side.

Runs ``tools/run_demo.py`` (both models, same budget) for each training seed on the
default synthetic set, and once on a second synthetic set drawn with another seed and
another object-count range, then prints one JSON document with every run's metrics
and the CLOC - CLIP margins.

    python benchmarks/region_effect.py                  # seeds 0 1 2 + the second set
    python benchmarks/region_effect.py --seeds 1 --no-second-set
"""
import argparse
import json
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run(work_dir, data_root, seed, data_seed, min_objects, max_objects):
    subprocess.run([
        sys.executable, osp.join(ROOT, 'tools/run_demo.py'), '--work-dir', work_dir, '--data-root', data_root,
        '--seed', str(seed), '--data-seed', str(data_seed), '--min-objects', str(min_objects),
        '--max-objects', str(max_objects)
    ], check=True)
    with open(osp.join(work_dir, 'summary.json')) as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--no-second-set', action='store_true')
    parser.add_argument('--work-dir', default='work_dirs/region_effect')
    parser.add_argument('--include', nargs='*', default=[], metavar='NAME=SUMMARY_JSON',
                        help='add finished runs, e.g. demo_set/seed0=work_dirs/demo/summary.json')
    args = parser.parse_args()

    runs = {}
    for item in args.include:
        name, path = item.split('=', 1)
        with open(path) as f:
            runs[name] = json.load(f)
    for seed in args.seeds:
        runs[f'demo_set/seed{seed}'] = run(
            osp.join(args.work_dir, f'seed{seed}'), 'data/cloc_demo', seed, 0, 2, 5)
    if not args.no_second_set:
        runs['second_set(data_seed=7,objects=3-6)/seed0'] = run(
            osp.join(args.work_dir, 'second_set'), 'data/cloc_demo_s7_3to6', 0, 7, 3, 6)
    margins = {k: v.get('region_top1_margin') for k, v in runs.items()}
    print(json.dumps(dict(runs=runs, region_top1_margins=margins,
                          min_margin=min(m for m in margins.values() if m is not None)), indent=2))


if __name__ == '__main__':
    main()
