# Copyright (c) cllip_mm contributors. All rights reserved.
"""The region effect across seeds, data and recipes: CLOC vs its CLIP baseline, side by side.

Runs ``tools/run_demo.py`` (both models, same budget; in distribution and on the shifted
sets) for each training seed on the default synthetic set, once on a second synthetic
set drawn with another seed and object-count range, and once with the ``from-clip``
recipe (the seed-0 CLIP checkpoint continued for 200 iterations with CLOC's losses or
with the CLIP loss alone); prints one JSON document with every run's metrics and the
CLOC - CLIP margins.

    python benchmarks/region_effect.py                  # seeds 0 1 2, second set, from-clip
    python benchmarks/region_effect.py --seeds 1 --no-second-set --no-from-clip
    python benchmarks/region_effect.py --seeds --include demo_set/seed0=work_dirs/demo/summary.json
"""
import argparse
import json
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run(work_dir, data_root, seed=0, data_seed=0, objects=(2, 6), extra=()):
    subprocess.run([
        sys.executable, osp.join(ROOT, 'tools/run_demo.py'), '--work-dir', work_dir, '--data-root', data_root,
        '--seed', str(seed), '--data-seed', str(data_seed), '--min-objects', str(objects[0]),
        '--max-objects', str(objects[1]), '--reuse', *extra
    ], check=True)
    with open(osp.join(work_dir, 'summary.json')) as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, nargs='*', default=[0, 1, 2])
    parser.add_argument('--no-second-set', action='store_true')
    parser.add_argument('--no-from-clip', action='store_true')
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
        runs[f'demo_set/seed{seed}'] = run(osp.join(args.work_dir, f'seed{seed}'), 'data/cloc_demo', seed)
    if not args.no_second_set:
        runs['second_set(data_seed=7,objects=3-7)/seed0'] = run(
            osp.join(args.work_dir, 'second_set'), 'data/cloc_demo_s7_3to7', 0, 7, (3, 7))
    if not args.no_from_clip:
        clip = osp.join(args.work_dir, 'seed0', 'clip', 'iter_1200.pth')
        if not osp.exists(clip):
            clip = 'work_dirs/demo/clip/iter_1200.pth'
        runs['from_clip(200it)/seed0'] = run(
            osp.join(args.work_dir, 'from_clip'), 'data/cloc_demo', extra=(
                '--recipe', 'from-clip', '--clip-checkpoint', clip))
    margins = {k: {m: v for m, v in run.items() if m.endswith('margin')} for k, run in runs.items()}
    print(json.dumps(dict(runs=runs, margins=margins), indent=2))


if __name__ == '__main__':
    main()
