# Copyright (c) cllip_mm contributors. All rights reserved.
"""Plot training curves from MMEngine logs to a PNG.

Example::

    python tools/analysis_tools/plot_curves.py work_dirs/demo/cloc work_dirs/demo/clip \
        --labels CLOC CLIP --keys loss_clip loss_region --out docs/demo_curves.png
"""
import argparse

from cllip_mm.utils.plot import plot_curves


def parse_args():
    parser = argparse.ArgumentParser(description='Plot training curves from MMEngine logs')
    parser.add_argument('work_dirs', nargs='+', help='work dirs of trainings')
    parser.add_argument('--labels', nargs='+', help='one label per work dir')
    parser.add_argument('--keys', nargs='+', default=['loss_clip', 'loss_region'])
    parser.add_argument('--out', required=True, help='PNG to write')
    return parser.parse_args()


if __name__ == '__main__':
    args = parse_args()
    print(plot_curves(args.work_dirs, args.labels, args.keys, args.out))
