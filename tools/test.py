# Copyright (c) cllip_mm contributors. All rights reserved.
"""Test (and evaluate) a checkpoint, e.g.
``python tools/test.py configs/cloc/xxx.py work_dirs/xxx/iter_600.pth``.

Same interface as MMDetection 3.x ``tools/test.py`` (without visualisation/TTA).
Refuses a checkpoint without weights for some of the model's modules (naming them;
``--allow-uninitialised`` evaluates anyway) or whose meta says its weights need another
activation or tokenizer than the config's (``cllip_mm.utils.weights_meta``).
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.evaluator import DumpResults
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from cllip_mm.utils import (
    dist_timeout,
    exit_promptly_on_distributed_failure,
    register_all_modules,
    setup_cpu_distributed,
    teardown_distributed,
)
from cllip_mm.utils.checkpoint_check import check_checkpoint_for_evaluation


def parse_args():
    parser = argparse.ArgumentParser(
        description='cllip_mm test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
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
    # `torch.distributed.launch` passes `--local-rank`; torchrun sets LOCAL_RANK.
    parser.add_argument(
        '--allow-uninitialised',
        action='store_true',
        help='evaluate even if the checkpoint has no weights for some of the model\'s '
        'modules (they keep their random initialisation)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()

    # register all modules in cllip_mm into the registries
    # do not init the default scope here because it will be init in the runner
    register_all_modules(init_default_scope=False)

    # load config
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    # work_dir is determined in this priority: CLI > segment in file > filename
    if args.work_dir is not None:
        # update configs according to CLI args if args.work_dir is not None
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        # use config filename as default work_dir if cfg.work_dir is None
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    cfg.load_from = args.checkpoint

    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out {args.out}: the dump file must be a .pkl file')

    # gloo + CPU DDP when launched with torchrun on a machine without CUDA
    setup_cpu_distributed(cfg)

    # a failure in one process of a distributed run ends every process promptly
    with exit_promptly_on_distributed_failure('tools/test.py', dist_timeout(cfg)):
        # build the runner from config
        if 'runner_type' not in cfg:
            # build the default runner
            runner = Runner.from_cfg(cfg)
        else:
            # build customized runner from the registry
            # if 'runner_type' is set in the cfg
            runner = RUNNERS.build(cfg)

        # MMEngine's load_from only warns of missing weights; and nothing in the tensors
        # says which activation / tokenizer they need (their checkpoint's meta does)
        check_checkpoint_for_evaluation(runner.model, args.checkpoint, args.config,
                                        args.allow_uninitialised)

        # add `DumpResults` dummy metric
        if args.out is not None:
            runner.test_evaluator.metrics.append(
                DumpResults(out_file_path=args.out))

        # start testing
        runner.test()
        del runner
        teardown_distributed()


if __name__ == '__main__':
    main()
