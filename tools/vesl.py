# Copyright (c) cllip_mm contributors. All rights reserved.
"""VESL: pseudo-label images with region-text records (captioner -> noun phrases ->
open-vocabulary detector -> filters). See docs/vesl.md.

    python tools/vesl.py INPUT OUT --config configs/vesl/CONFIG.py \
        [--num-workers N --worker-id I] [--device cuda --dtype bfloat16] \
        [--batch-size B] [--draw N] [--cfg-options k=v ...]

INPUT: an image folder, a file list (one path per line, optional TAB caption), a
.tar shard, a folder of them, or a pattern (``shards/{00000..00099}.tar``). Rerun
the same command to resume; give each process (on any machine sharing OUT) its own
``--worker-id``. Without ``--worker-id`` the slice comes from ``RANK`` /
``WORLD_SIZE`` (torchrun) or ``SLURM_PROCID`` / ``SLURM_NTASKS`` when set.
"""
import argparse
import json
import os
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction

try:
    import cllip_mm  # noqa: F401
except ImportError:  # run from a source checkout without `pip install -e .`
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))
from cllip_mm.utils import register_all_modules  # noqa: E402
from cllip_mm.vesl import VESLRunner  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='VESL pseudo-labelling')
    parser.add_argument('input', help='image folder, file list, .tar or tar pattern')
    parser.add_argument('out', help='output directory (shared by all workers)')
    parser.add_argument('--config', required=True, help='a configs/vesl/ config')
    parser.add_argument('--num-workers', '--world-size', type=int, default=None)
    parser.add_argument('--worker-id', '--rank', type=int, default=None)
    parser.add_argument('--device', help="override the config's device ('cpu', 'cuda', "
                        "'cuda:1', 'auto')")
    parser.add_argument('--dtype', choices=['float32', 'bfloat16', 'float16'])
    parser.add_argument('--batch-size', type=int)
    parser.add_argument('--draw', type=int, default=0, metavar='N',
                        help='draw the first N labelled images to OUT/samples/*.png')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def worker_slice(args):
    """(worker_id, num_workers, local_rank) from the arguments or the launcher."""
    env = os.environ
    if args.num_workers is not None or args.worker_id is not None:
        num, wid = args.num_workers or 1, args.worker_id or 0
    elif 'WORLD_SIZE' in env and 'RANK' in env:
        num, wid = int(env['WORLD_SIZE']), int(env['RANK'])
    elif 'SLURM_NTASKS' in env and 'SLURM_PROCID' in env:
        num, wid = int(env['SLURM_NTASKS']), int(env['SLURM_PROCID'])
    else:
        num, wid = 1, 0
    local_rank = int(env.get('LOCAL_RANK', env.get('SLURM_LOCALID', 0)))
    return wid, num, local_rank


def main(argv=None) -> dict:
    args = parse_args(argv)
    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    worker_id, num_workers, local_rank = worker_slice(args)
    if args.device:
        cfg.device = args.device
    if cfg.get('device', 'cpu') == 'auto':
        cfg.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if cfg.device == 'cuda':  # one GPU per local process
        cfg.device = f'cuda:{local_rank}'
    if args.dtype:
        cfg.dtype = args.dtype
    if args.batch_size:
        cfg.batch_size = args.batch_size
    runner = VESLRunner(cfg, args.input, args.out, worker_id=worker_id,
                        num_workers=num_workers, progress=not args.no_progress,
                        draw_samples=args.draw)
    report = runner.run()
    print(json.dumps(report, indent=2))
    return report


if __name__ == '__main__':
    main()
