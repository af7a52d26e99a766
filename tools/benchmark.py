# Copyright (c) cllip_mm contributors. All rights reserved.
"""The paper's zero-shot benchmarks in one command (docs/benchmarks.md):

    python tools/benchmark.py CONFIG CHECKPOINT --tasks coco_region_cls lvis_region_cls \
        grit_region_retrieval imagenet_zeroshot coco_retrieval flickr30k_retrieval \
        --data-root data
    bash tools/dist_benchmark.sh CONFIG CHECKPOINT 8 --tasks ...   # torchrun, N processes

CONFIG is the model's config (the one it was trained with, e.g.
configs/cloc/cloc_vit-b16_128xb256-400k_region-text.py); each task is
configs/benchmarks/_base_/tasks/<task>.py (its dataset, pipeline, metric and what the
model computes), run through MMEngine's test loop, so it is distributed like
tools/test.py. Prints one table, writes <work-dir>/benchmark.json.

A checkpoint without weights for some of the model's modules (e.g. a CLIP checkpoint under
a CLOC config: the Prompter would be random) is refused, naming them, as by tools/test.py;
``--allow-uninitialised`` evaluates anyway. So is a checkpoint whose meta says its weights
need another activation (QuickGELU for OpenAI CLIP) or tokenizer than the config builds.
A warning is logged (and listed under ``data_overlap`` in the JSON) when the training data the
checkpoint shows (MMEngine's ``meta['cfg']``) overlaps an evaluated set (docs/benchmarks.md,
"Data leakage").
"""
import argparse
import itertools
import json
import os
import os.path as osp
import sys
import time

from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process
from mmengine.runner import Runner

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from cllip_mm.utils import register_all_modules, setup_cpu_distributed, teardown_distributed  # noqa: E402
from cllip_mm.utils.checkpoint_check import check_checkpoint_for_evaluation  # noqa: E402
from cllip_mm.utils.data_overlap import warn_data_overlap  # noqa: E402

TASK_DIR = osp.join(ROOT, 'configs', 'benchmarks', '_base_', 'tasks')
_run_ids = itertools.count()  # distinct experiment names for runs in one process
TASKS = sorted(osp.splitext(f)[0] for f in os.listdir(TASK_DIR) if f.endswith('.py'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='cllip_mm zero-shot benchmarks')
    parser.add_argument('config', help="the model's config file")
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--tasks', nargs='+', required=True, choices=TASKS, metavar='TASK',
                        help=f'one or more of {TASKS}')
    parser.add_argument('--data-root', default='data',
                        help="folder holding each task's set under its default name "
                        "(coco/, lvis_v1/, grit/, imagenet/, flickr30k/, cloc_demo/)")
    parser.add_argument('--task-root', nargs='+', default=[], metavar='TASK=DIR',
                        help='the exact data root of a task (overrides --data-root)')
    parser.add_argument('--templates',
                        help="prompt templates: 'openai' (80), 'photo', 'none' ('{}'), or a "
                        'text file with one template a line (default: the task\'s)')
    parser.add_argument('--region-embed-mode', choices=['prompter', 'crop'],
                        help="how regions are embedded (default: the model's)")
    parser.add_argument('--crop-scale', type=float,
                        help='crop context of crop-and-encode: box scale about its centre')
    parser.add_argument('--input-size', type=int, nargs='+', metavar='SIZE',
                        help="H [W] the tasks' resize steps use (default: the model's img_size; "
                        'the demo models, trained at 96, are evaluated at 128: '
                        'docs/region_effect.md)')
    parser.add_argument('--batch-size', type=int)
    parser.add_argument('--num-workers', type=int)
    parser.add_argument('--work-dir', help='default: work_dirs/benchmarks/<config name>')
    parser.add_argument('--out', help='the JSON file (default: <work-dir>/benchmark.json)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='overrides merged into every task config')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none')
    parser.add_argument('--allow-uninitialised', action='store_true',
                        help="evaluate even if the checkpoint has no weights for some of the "
                        "model's modules (they keep their random initialisation)")
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if args.input_size and len(args.input_size) > 2:
        parser.error(f'--input-size takes H or H W, got {args.input_size}')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def read_templates(value):
    """A named set (kept as its name) or the lines of a file."""
    if value is None or not osp.isfile(value):
        return value
    with open(value, encoding='utf-8') as f:
        return [line.rstrip('\n') for line in f if line.strip()]


def fit_pipeline(pipeline, img_size) -> None:
    """Size the task's resize / crop steps to the model's input (h, w)."""
    h, w = img_size
    for step in pipeline:
        if step['type'] == 'Resize' and not step.get('keep_ratio', False):
            step['scale'] = (w, h)
        elif step['type'] == 'Resize':  # shorter side to the crop size
            step['scale'] = (4096, min(h, w))
        elif step['type'] == 'CenterCrop':
            step['crop_size'] = (w, h)


def task_config(args, task: str, work_dir: str) -> Config:
    """The model config with the task's data, metric, loop and model test_cfg."""
    cfg = Config.fromfile(args.config)
    spec = Config.fromfile(osp.join(TASK_DIR, f'{task}.py'))
    task_roots = dict(item.split('=', 1) for item in args.task_root)
    unknown = set(task_roots) - set(TASKS)
    if unknown:
        raise ValueError(f'--task-root: unknown tasks {sorted(unknown)}')
    default_root = spec.test_dataloader.dataset.data_root
    data_root = task_roots.get(task) or osp.join(
        args.data_root, osp.relpath(default_root, 'data'))
    spec.test_dataloader.dataset.data_root = data_root.rstrip('/') + '/'
    size = args.input_size or cfg.model.image_encoder.get('img_size', 224)
    size = [size] if isinstance(size, int) else list(size)
    image_size = (size[0], size[-1])  # H or (H, W)
    fit_pipeline(spec.test_dataloader.dataset.pipeline, image_size)
    if args.batch_size:
        spec.test_dataloader.batch_size = args.batch_size
    if args.num_workers is not None:
        spec.test_dataloader.num_workers = args.num_workers

    cfg.test_dataloader = spec.test_dataloader
    cfg.test_evaluator = spec.test_evaluator
    cfg.test_cfg = spec.test_cfg
    cfg.custom_hooks = spec.get('task_hooks', [])
    model_test_cfg = dict(spec.model_test_cfg)
    if args.templates is not None:
        model_test_cfg['prompt_templates'] = read_templates(args.templates)
    cfg.model.test_cfg = model_test_cfg
    if args.region_embed_mode:
        cfg.model.region_embed_mode = args.region_embed_mode
    if args.crop_scale is not None:
        cfg.model.crop_scale = args.crop_scale
    cfg.launcher = args.launcher
    cfg.work_dir = osp.join(work_dir, task)
    cfg.experiment_name = f'{task}_{next(_run_ids)}'
    if cfg.get('visualizer'):  # one visualizer (and log dir) per task
        cfg.visualizer.name = cfg.experiment_name
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def format_table(results: dict) -> str:
    lines = [f'{"task":<28}{"metric":<34}{"value":>10}', '-' * 72]
    for task, metrics in results.items():
        for key, value in metrics.items():
            cell = f'{value:>10.4f}' if isinstance(value, float) else f'{value:>10}'
            lines.append(f'{task:<28}{key:<34}{cell}')
    return '\n'.join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    work_dir = args.work_dir or osp.join(
        'work_dirs', 'benchmarks', osp.splitext(osp.basename(args.config))[0])
    results, timings, overlap = {}, {}, {}
    for task in args.tasks:
        cfg = task_config(args, task, work_dir)
        setup_cpu_distributed(cfg)  # the process group is made once, for every task
        start = time.time()
        runner = Runner.from_cfg(cfg)
        # MMEngine's load_from only warns of missing weights; the activations and the
        # tokenizer the weights need are in the checkpoint's meta, not its tensors
        checkpoint = check_checkpoint_for_evaluation(runner.model, args.checkpoint,
                                                     args.config, args.allow_uninitialised)
        # the training data the checkpoint shows (meta['cfg']) against the evaluated set
        overlap[task] = warn_data_overlap(checkpoint, args.checkpoint,
                                          cfg.test_dataloader.dataset, task)
        del checkpoint
        results[task] = runner.test()
        timings[task] = round(time.time() - start, 2)
        del runner
    if is_main_process():
        table = format_table(results)
        print('\n' + table, flush=True)
        out = args.out or osp.join(work_dir, 'benchmark.json')
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        with open(out, 'w') as f:
            json.dump(dict(config=args.config, checkpoint=args.checkpoint, results=results,
                           seconds=timings, data_overlap=overlap), f, indent=2)
        print(f'[benchmark] wrote {out}', flush=True)
    teardown_distributed()
    return results


if __name__ == '__main__':
    main()
