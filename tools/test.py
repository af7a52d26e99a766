# Copyright (c) cllip_mm contributors. All rights reserved.
"""Test (and evaluate) a checkpoint, e.g.
``python tools/test.py configs/cloc/xxx.py work_dirs/xxx/iter_600.pth``.

Same interface as MMDetection 3.x ``tools/test.py`` (without visualisation/TTA).
Refuses a checkpoint without weights for some of the model's modules (naming them;
``--allow-uninitialised`` evaluates anyway) or whose meta says its weights need another
activation or tokenizer than the config's (``cllip_mm.utils.weights_meta``).
"""
import argparse

from mmengine.evaluator import DumpResults

from cllip_mm.utils import add_runner_args, load_runner_config, parse_runner_args, run_with_runner
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
    add_runner_args(parser)
    parser.add_argument(
        '--allow-uninitialised',
        action='store_true',
        help='evaluate even if the checkpoint has no weights for some of the model\'s '
        'modules (they keep their random initialisation)')
    return parse_runner_args(parser)


def main():
    args = parse_args()

    # config + --cfg-options, launcher and work dir (CLI > config > config name)
    cfg = load_runner_config(args)
    cfg.load_from = args.checkpoint

    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out {args.out}: the dump file must be a .pkl file')

    def evaluate(runner):
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

    # gloo + CPU DDP when launched with torchrun on a machine without CUDA; a failure in
    # one process of a distributed run ends every process promptly
    run_with_runner(cfg, 'tools/test.py', evaluate)


if __name__ == '__main__':
    main()
