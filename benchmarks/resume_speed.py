# Copyright (c) cllip_mm contributors. All rights reserved.
"""Resume cost of the demo config at iteration k: ``ResumableIterBasedTrainLoop`` +
``ResumableInfiniteSampler`` (O(1)) vs MMEngine's ``IterBasedTrainLoop`` +
``InfiniteSampler`` (replays k batches). Two times per run: ``loop`` from the loop's
``before_train`` (model built, checkpoint loaded) to the first training iteration (the
part that depends on k), and ``total`` from ``Runner.from_cfg`` to that iteration.

The checkpoint of iteration k is the checkpoint of a 1-iteration run of the demo config
whose ``meta.iter`` (and sampler position) is set to k: resume reads nothing else of it
that depends on k. The replay baseline is measured at ``--baseline-iters`` and, as
replaying is linear in k, extrapolated to ``--iters`` from its measured rate.

    python benchmarks/resume_speed.py [--data-root data/cloc_demo] [--iters 10000] \\
        [--baseline-iters 10 100]

Prints one JSON object (seconds). Writes the demo set to ``--data-root`` if missing.
"""
import argparse
import copy
import json
import os.path as osp
import tempfile
import time

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from cllip_mm.registry import HOOKS
from cllip_mm.utils import register_all_modules

CONFIG = 'configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py'
FIRST_ITER = {}


@HOOKS.register_module(force=True)
class FirstIterTimeHook(Hook):
    """Records ``time.perf_counter()`` at ``before_train`` and when the first training
    iteration starts."""

    def before_train(self, runner):
        FIRST_ITER.setdefault('before_train', time.perf_counter())

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        FIRST_ITER.setdefault('t', time.perf_counter())


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default='data/cloc_demo')
    parser.add_argument('--iters', type=int, default=10000)
    parser.add_argument('--baseline-iters', type=int, nargs='+', default=[10, 100])
    return parser.parse_args()


def demo_cfg(data_root: str, work_dir: str, resumable: bool) -> Config:
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = work_dir
    cfg.train_dataloader.dataset.data_root = data_root
    cfg.model.tokenizer.path = osp.join(data_root, 'tokenizer')
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint.update(interval=1, save_last=False)
    cfg.default_hooks.logger.interval = 1
    cfg.log_level = 'WARNING'
    # one visualizer / logger per runner (they are global instances keyed by name)
    name = f'resume_speed_{time.time_ns()}'
    cfg.visualizer.name, cfg.experiment_name = name, name
    if resumable:
        cfg.train_cfg.type = 'ResumableIterBasedTrainLoop'
        cfg.train_dataloader.sampler = dict(type='ResumableInfiniteSampler', shuffle=True)
    return cfg


def time_resume(data_root: str, ckpt: dict, k: int, resumable: bool) -> float:
    with tempfile.TemporaryDirectory() as work_dir:
        ckpt = copy.deepcopy(ckpt)
        ckpt['meta']['iter'] = k
        if 'train_sampler' in ckpt:
            ckpt['train_sampler']['num_consumed'] = k * 64
        path = osp.join(work_dir, f'iter_{k}.pth')
        torch.save(ckpt, path)
        cfg = demo_cfg(data_root, work_dir, resumable)
        cfg.train_cfg.max_iters = k + 1
        cfg.default_hooks.checkpoint.interval = k + 10  # no checkpoint inside the timing
        cfg.custom_hooks = [dict(type='FirstIterTimeHook')]
        cfg.resume, cfg.load_from = True, path
        FIRST_ITER.clear()
        start = time.perf_counter()
        runner = Runner.from_cfg(cfg)
        runner.train()
        assert runner.iter == k + 1
        return dict(loop=round(FIRST_ITER['t'] - FIRST_ITER['before_train'], 2),
                    total=round(FIRST_ITER['t'] - start, 2))


def main():
    args = parse_args()
    register_all_modules()
    if not osp.exists(osp.join(args.data_root, 'annotations', 'train.jsonl')):
        from cllip_mm.datasets.synthetic import generate_synthetic_regions
        generate_synthetic_regions(args.data_root, num_train=4000, num_val=500, seed=0)
    ckpts = {}
    with tempfile.TemporaryDirectory() as work_dir:
        for resumable in (True, False):
            cfg = demo_cfg(args.data_root, osp.join(work_dir, str(resumable)), resumable)
            cfg.train_cfg.max_iters = 1
            Runner.from_cfg(cfg).train()
            ckpts[resumable] = torch.load(osp.join(cfg.work_dir, 'iter_1.pth'),
                                          map_location='cpu', weights_only=False)
    result = dict(config=CONFIG, batch_size=64, iters=args.iters, resumable={},
                  replay_baseline={})
    for k in sorted({10, args.iters}):
        result['resumable'][k] = time_resume(args.data_root, ckpts[True], k, True)
    for k in args.baseline_iters:
        result['replay_baseline'][k] = time_resume(args.data_root, ckpts[False], k, False)
    ks = sorted(result['replay_baseline'])
    if len(ks) >= 2:
        lo, hi = (result['replay_baseline'][k]['loop'] for k in (ks[0], ks[-1]))
        rate = (hi - lo) / (ks[-1] - ks[0])
        result['replay_s_per_iter'] = round(rate, 4)
        result['replay_loop_s_extrapolated'] = {args.iters: round(
            lo + rate * (args.iters - ks[0]), 1)}
    result['resumable_loop_starts_within_10s_at_iters'] = \
        result['resumable'][args.iters]['loop'] < 10
    print(json.dumps(result))


if __name__ == '__main__':
    main()
