# Copyright (c) cllip_mm contributors. All rights reserved.
import argparse
import datetime
import os
import os.path as osp
import warnings
from typing import Any, Callable

from mmengine import DefaultScope
from mmengine.config import Config, DictAction

from .dist import (
                   dist_timeout,
                   exit_promptly_on_distributed_failure,
                   setup_cpu_distributed,
                   teardown_distributed,
)


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every cllip_mm module so its components are registered.

    Args:
        init_default_scope (bool): Also make ``cllip_mm`` the current default scope,
            so that ``Registry.build`` looks in cllip_mm's registries first.
    """
    import cllip_mm.datasets  # noqa: F401,F403
    import cllip_mm.engine  # noqa: F401,F403
    import cllip_mm.evaluation  # noqa: F401,F403
    import cllip_mm.models  # noqa: F401,F403
    import cllip_mm.vesl  # noqa: F401,F403
    import cllip_mm.visualization  # noqa: F401,F403

    if not init_default_scope:
        return
    never_created = DefaultScope.get_current_instance() is None \
        or not DefaultScope.check_instance_created('cllip_mm')
    if never_created:
        DefaultScope.get_instance('cllip_mm', scope_name='cllip_mm')
        return
    current_scope = DefaultScope.get_current_instance()
    if current_scope.scope_name != 'cllip_mm':
        warnings.warn('The current default scope '
                      f'"{current_scope.scope_name}" is not "cllip_mm", '
                      '`register_all_modules` will force the current'
                      'default scope to be "cllip_mm". If this is not '
                      'expected, please set `init_default_scope=False`.')
        # avoid name conflict
        new_instance_name = f'cllip_mm-{datetime.datetime.now()}'
        DefaultScope.get_instance(new_instance_name, scope_name='cllip_mm')


# ---------------------------------------------------- what tools/train.py and test.py share
def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--cfg-options`` and ``--launcher``, as in MMDetection's tools/train.py and
    tools/test.py (read back by :func:`load_runner_config`)."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')


def parse_runner_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Add ``--local_rank`` (last), parse the command line and, unless torchrun has set
    it, export ``LOCAL_RANK`` from it."""
    # `torch.distributed.launch` passes `--local-rank`; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_runner_config(args: argparse.Namespace) -> Config:
    """Register cllip_mm's modules (the runner sets the default scope) and load
    ``args.config`` with ``args.launcher``, ``args.cfg_options`` merged in, and the work
    dir from ``--work-dir``, else the config's ``work_dir``, else
    ``./work_dirs/<config name>``."""
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def build_runner(cfg: Config):
    """MMEngine's ``Runner`` from ``cfg``, or the registered ``cfg.runner_type``."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def run_with_runner(cfg: Config, tool: str, work: Callable[[Any], None]) -> None:
    """Build the runner of ``cfg`` and call ``work(runner)`` (e.g. ``runner.train()``),
    distributed on CPU too (:func:`setup_cpu_distributed`); if a process of a distributed
    run fails, every process exits promptly, naming ``tool``
    (:func:`exit_promptly_on_distributed_failure`). Afterwards drops the runner and
    then the process group (:func:`teardown_distributed`)."""
    setup_cpu_distributed(cfg)
    with exit_promptly_on_distributed_failure(tool, dist_timeout(cfg)):
        runner = build_runner(cfg)
        work(runner)
        del runner
        teardown_distributed()
