# Copyright (c) cllip_mm contributors. All rights reserved.
"""Samples/s of the full training loop against the bare model step.

- ``loop``: the runner that ``tools/train.py`` builds (``Runner.from_cfg`` of the demo
  config: data loader with its workers and pipeline, hooks, logging, checkpointing left at
  the config's interval) for ``--iters`` iterations; timed from the start of iteration
  ``--warmup`` to the end of the last one by a hook.
- ``bare``: the same model and optimizer wrapper, ``model.train_step`` on one batch taken
  from the loader beforehand, ``--iters - --warmup`` times; run before and after the loop
  (the mean is reported).

``loop / bare`` near 1 means data loading and hooks are not the bottleneck.

    python benchmarks/train_loop_throughput.py [--config CFG] [--iters 30] [--warmup 5] \\
        [--workers 2] [--data-root data/cloc_demo]

Prints one JSON object.
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
import tempfile
import time

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from cllip_mm.registry import HOOKS
from cllip_mm.utils import register_all_modules

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MARKS = {}


def default_config() -> str:
    # The demo config (its file name follows the configs' naming scheme).
    found = sorted(glob.glob(osp.join(REPO, 'configs/cloc/cloc_vit-tiny-p8_1xb64-*_synthetic.py')))
    if not found:
        raise SystemExit('demo config not found under configs/cloc/; pass --config')
    return found[0]


@HOOKS.register_module(force=True)
class IterTimeHook(Hook):
    """Records ``perf_counter`` at the start of iteration ``warmup`` and after the last."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == self.warmup:
            MARKS['start'] = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        MARKS['end'] = time.perf_counter()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=None)
    parser.add_argument('--data-root', default='data/cloc_demo')
    parser.add_argument('--iters', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--batch', type=int, default=0, help='0: the config\'s')
    parser.add_argument('--out')
    return parser.parse_args()


def make_cfg(args, work_dir: str) -> Config:
    cfg = Config.fromfile(args.config or default_config())
    cfg.work_dir = work_dir
    cfg.train_dataloader.dataset.data_root = args.data_root
    cfg.model.tokenizer.path = osp.join(args.data_root, 'tokenizer')
    cfg.train_dataloader.num_workers = args.workers
    cfg.train_dataloader.persistent_workers = args.workers > 0
    if args.batch:
        cfg.train_dataloader.batch_size = args.batch
    cfg.train_cfg.max_iters = args.iters
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.param_scheduler = []
    cfg.log_level = 'WARNING'
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='IterTimeHook', warmup=args.warmup)]
    return cfg


def bare_steps(runner, batch, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        runner.model.train_step(batch, runner.optim_wrapper)
    return time.perf_counter() - start


def main():
    args = parse_args()
    register_all_modules()
    if not osp.exists(osp.join(args.data_root, 'annotations', 'train.jsonl')):
        from cllip_mm.datasets.synthetic import generate_synthetic_regions
        generate_synthetic_regions(args.data_root, num_train=4000, num_val=500, seed=0)
    with tempfile.TemporaryDirectory() as work_dir:
        cfg = make_cfg(args, work_dir)
        runner = Runner.from_cfg(cfg)
        batch_size = cfg.train_dataloader.batch_size
        n = args.iters - args.warmup
        # The bare step: the runner's model and optimizer wrapper on one ready batch.
        runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
        batch = next(iter(runner.build_dataloader(cfg.train_dataloader)))
        bare_steps(runner, batch, 2)
        bare = [bare_steps(runner, batch, n)]
        runner.train()
        loop = MARKS['end'] - MARKS['start']
        bare.append(bare_steps(runner, batch, n))
    bare_s = sum(bare) / len(bare)
    result = dict(benchmark='train_loop_throughput', config=osp.relpath(cfg.filename, REPO),
                  batch_size=batch_size, workers=args.workers, timed_iters=n,
                  threads=torch.get_num_threads(),
                  loop_samples_per_s=round(n * batch_size / loop, 2),
                  bare_samples_per_s=round(n * batch_size / bare_s, 2),
                  bare_runs_s=[round(b, 2) for b in bare],
                  loop_over_bare=round(bare_s / loop, 3))
    print(json.dumps(result))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    sys.exit(main())
