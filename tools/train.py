# Copyright (c) cllip_mm contributors. All rights reserved.
"""Train a model from a config, e.g. ``python tools/train.py configs/cloc/xxx.py``.

Same interface as MMDetection 3.x ``tools/train.py``. ``--resume`` without a path
resumes from the latest checkpoint in the work dir (``last_checkpoint``).
"""
import argparse
import importlib
import logging
import os
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from cllip_mm.utils import add_runner_args, load_runner_config, parse_runner_args, run_with_runner


def parse_args():
    parser = argparse.ArgumentParser(description='Train a cllip_mm model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training: float16 with dynamic '
        'loss scaling (AmpOptimWrapper) on CUDA, bfloat16 (BF16AmpOptimWrapper) '
        'without CUDA')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='enable automatically scaling LR.')
    parser.add_argument(
        '--tracking',
        nargs='+',
        choices=['none', 'tensorboard', 'wandb'],
        default=['none'],
        help='experiment tracking through MMEngine\'s visualisation backends, next to the '
        'local scalars.json: TensorBoard (event files in the run\'s vis_data folder) and / or '
        'Weights & Biases (project $WANDB_PROJECT or cllip_mm; WANDB_MODE=offline to log '
        'without an account or network); docs/distributed.md')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.')
    add_runner_args(parser)
    return parse_runner_args(parser)


def enable_amp(cfg: Config) -> None:
    """Switch ``cfg.optim_wrapper`` to mixed precision for the available device."""
    optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if optim_wrapper in ('AmpOptimWrapper', 'BF16AmpOptimWrapper'):
        print_log(
            f'AMP training is already enabled in your config ({optim_wrapper}).',
            logger='current',
            level=logging.WARNING)
        return
    if optim_wrapper != 'OptimWrapper':
        raise ValueError('`--amp` is only supported when the optimizer wrapper '
                         f'type is `OptimWrapper`, but got {optim_wrapper}.')
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    else:
        # mmengine's AmpOptimWrapper asserts an accelerator; bf16 needs no scaler.
        cfg.optim_wrapper.type = 'BF16AmpOptimWrapper'


# --tracking NAME: MMEngine's backend, the module it needs, how to install it
TRACKING = dict(
    tensorboard=('TensorboardVisBackend', 'torch.utils.tensorboard', 'pip install tensorboard'),
    wandb=('WandbVisBackend', 'wandb', 'pip install wandb'))


def enable_tracking(cfg: Config, trackers, run_name: str) -> None:
    """Add the visualisation backends of ``trackers`` (names of :data:`TRACKING`;
    ``'none'`` adds nothing) to ``cfg.visualizer``, keeping its backends (the local
    one). Exits with what to install if a tracker's package is missing."""
    trackers = [t for t in trackers if t != 'none']
    if not trackers:
        return
    visualizer = cfg.get('visualizer') or dict(type='Visualizer', name='visualizer')
    backends = list(visualizer.get('vis_backends') or [dict(type='LocalVisBackend')])
    for tracker in dict.fromkeys(trackers):
        backend, module, install = TRACKING[tracker]
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise SystemExit(f'tools/train.py: --tracking {tracker} needs {module} ({e}): '
                             f'`{install}`, or leave out --tracking {tracker}') from e
        names = [getattr(b.get('type'), '__name__', str(b.get('type'))) for b in backends]
        if any(name.split('.')[-1] == backend for name in names):
            continue  # the config has it already
        if tracker == 'wandb':
            backends.append(dict(type=backend, init_kwargs=dict(
                project=os.environ.get('WANDB_PROJECT') or 'cllip_mm', name=run_name)))
        else:
            backends.append(dict(type=backend))
    visualizer['vis_backends'] = backends
    cfg.visualizer = visualizer


def main():
    args = parse_args()

    # config + --cfg-options, launcher and work dir (CLI > config > config name)
    cfg = load_runner_config(args)

    # TensorBoard / Weights & Biases next to the local scalars
    enable_tracking(cfg, args.tracking, osp.splitext(osp.basename(args.config))[0])

    # enable automatic-mixed-precision training
    if args.amp:
        enable_amp(cfg)

    # enable automatically scaling LR
    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and \
                'enable' in cfg.auto_scale_lr and \
                'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise RuntimeError('Can not find "auto_scale_lr" or '
                               '"auto_scale_lr.enable" or '
                               '"auto_scale_lr.base_batch_size" in your'
                               ' configuration file.')

    # resume is determined in this priority: resume from > auto_resume
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    # start training: gloo + CPU DDP when launched with torchrun on a machine without CUDA;
    # a failure in one process of a distributed run ends every process promptly
    run_with_runner(cfg, 'tools/train.py', lambda runner: runner.train())


if __name__ == '__main__':
    main()
