# Copyright (c) cllip_mm contributors. All rights reserved.
"""Does pretraining pay off downstream? Fine-tune MMDetection detectors from several
pretraining checkpoints (CLOC, CLIP, a random initialisation as the floor) on the same
data, schedule and seed, and print one table.

For every init (``--init NAME=CHECKPOINT``, ``NAME=random`` for a random one) the
checkpoint is converted once by ``tools/model_converters/cllip_to_mmdet.py`` (checked
against the tiny Grounding DINO: the backbone and text tower of every task); then for
every task and seed mmdet's own ``tools/train.py`` fine-tunes it (validation every
``--val-interval`` iterations, logged by MMEngine to ``vis_data/scalars.json``) and mmdet's
``tools/test.py`` tests the last checkpoint on the whole val split, each in a subprocess:

- ``ov``: open-vocabulary detection on the synthetic base / novel split,
  ``ov_coco/grounding-dino_cloc-vit-tiny-p8_1xb2-4it_ov-synthetic.py``; ``coco/novel_ap50``,
  ``coco/base_ap50``, ``coco/bbox_mAP`` (OVCocoMetric).
- ``refexp``: referring expressions,
  ``refcoco/grounding-dino_cloc-vit-tiny-p8_1xb2-4it_refexp-synthetic.py``;
  ``refexp/refcoco_precision@1`` (RefExpMetric).
- ``det``: closed-set detection (every class in training),
  ``coco_det/faster-rcnn_cloc-vit-tiny-p8_fpn_1xb2-4it_synthetic.py``; ``coco/bbox_mAP``,
  ``coco/bbox_mAP_50`` (CocoMetric).

(configs under ``configs/downstream/``). Each run's config (the task config with this
schedule, seed and optimiser) is dumped to ``<work-dir>/<task>/<init>_s<seed>/config.py``,
next to its logs and its ``test/`` result. Written to ``--work-dir``: ``summary.json``
(every run's metrics, wall times, seconds per iteration, validation curves, and the
iterations each init needs to reach the others' final value), ``summary.md`` (the table)
and ``curves.png`` (the validation curves of the inits, one panel per task).

    # after README command 1 (work_dirs/demo/{cloc,clip}/iter_1200.pth, data/cloc_demo)
    python benchmarks/downstream_compare.py --iters 1000 --val-interval 200 --jobs 2

    # smoke run: stand-in checkpoints, a small set, 4 iterations
    python benchmarks/downstream_compare.py --init cloc=/tmp/c.pth clip=/tmp/p.pth \\
        random=random --data-root /tmp/synth --iters 4 --val-interval 2

Exit status 1 if a step fails or a metric is missing.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import mmdet_downstream_e2e as e2e  # noqa: E402

ROOT = e2e.ROOT
sys.path.insert(0, ROOT)

TASKS = {
    'ov': dict(
        config='configs/downstream/ov_coco/grounding-dino_cloc-vit-tiny-p8_1xb2-4it_ov-synthetic.py',
        metrics=('coco/novel_ap50', 'coco/base_ap50', 'coco/bbox_mAP'),
        val_ann='instances_val.json'),
    'refexp': dict(
        config='configs/downstream/refcoco/grounding-dino_cloc-vit-tiny-p8_1xb2-4it_refexp-synthetic.py',
        metrics=('refexp/refcoco_precision@1', ),
        val_ann='refexp_val.json'),
    'det': dict(
        config='configs/downstream/coco_det/faster-rcnn_cloc-vit-tiny-p8_fpn_1xb2-4it_synthetic.py',
        metrics=('coco/bbox_mAP', 'coco/bbox_mAP_50'),
        val_ann='instances_val.json'),
}
#: The config the converted checkpoints are checked against (its backbone and text tower
#: are those of every task).
CHECK_CONFIG = TASKS['ov']['config']
DEMO_INITS = ('cloc=work_dirs/demo/cloc/iter_1200.pth', 'clip=work_dirs/demo/clip/iter_1200.pth',
              'random=random')
RANDOM_CONFIG = 'configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--init', nargs='+', default=list(DEMO_INITS), metavar='NAME=CKPT',
                        help='pretraining checkpoints (cllip_mm / MMEngine format); '
                        "CKPT 'random' is a random initialisation of --random-config "
                        '(default: README command 1\'s CLOC and CLIP, and random)')
    parser.add_argument('--random-config', default=RANDOM_CONFIG,
                        help='pretraining config whose model a random init is drawn from')
    parser.add_argument('--data-root', default='data/cloc_demo',
                        help='a synthetic set (generate_synthetic_regions.py); its mmdet '
                        'formats are written to <data-root>/mmdet when missing')
    parser.add_argument('--work-dir', default='work_dirs/downstream_compare')
    parser.add_argument('--tasks', nargs='+', choices=list(TASKS), default=list(TASKS))
    parser.add_argument('--iters', type=int, default=1000, help='fine-tuning iterations')
    parser.add_argument('--val-interval', type=int, default=200,
                        help='validate every N iterations (the learning curves)')
    parser.add_argument('--val-images', type=int, default=100,
                        help='validate on the first N val images (0: all); the final test '
                        'always uses the whole val split')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--lr', type=float, help="override the task configs' learning rate")
    parser.add_argument('--schedule', choices=('step', 'cosine', 'constant'), default='step',
                        help='after a linear warmup: x0.1 at 80%% of --iters (mmdet\'s 1x '
                        'shape), cosine to 0, or constant')
    parser.add_argument('--warmup', type=int, default=50, help='warmup iterations')
    parser.add_argument('--layer-decay', type=float,
                        help='ViT layer-wise LR decay rate (default: the task config\'s, 0.8)')
    parser.add_argument('--text-tower', choices=('tuned', 'frozen'), default='tuned',
                        help='Grounding DINO text tower: fine-tuned at 0.1x LR (the configs) '
                        'or frozen (LR 0)')
    parser.add_argument('--jobs', type=int, default=1,
                        help='fine-tunes at once (2 on 2 cores: one thread each)')
    parser.add_argument('--threads', type=int, default=1, help='OMP threads per fine-tune')
    parser.add_argument('--log-interval', type=int, default=10)
    parser.add_argument('--keep-checkpoints', action='store_true',
                        help='keep the fine-tuned checkpoints (deleted after the test)')
    parser.add_argument('--reuse', action='store_true',
                        help='a run whose directory holds record.json of the same schedule '
                        'is read, not run again (build one table over several invocations)')
    parser.add_argument('--table-only', action='store_true',
                        help='run nothing: the table of the runs already recorded (with '
                        '--reuse semantics); a (task, init, seed) without a record is left out')
    parser.add_argument('--dry-run', action='store_true',
                        help='write the run configs and print the commands only')
    args = parser.parse_args(argv)
    if args.val_interval <= 0 or args.iters % args.val_interval:
        parser.error(f'--val-interval ({args.val_interval}) must divide --iters ({args.iters})')
    return args


def parse_inits(specs: Sequence[str]) -> Dict[str, str]:
    inits = {}
    for spec in specs:
        name, sep, path = spec.partition('=')
        if not sep or not name or not path:
            raise SystemExit(f'--init {spec!r}: expected NAME=CHECKPOINT or NAME=random')
        if name in inits:
            raise SystemExit(f'--init: name {name!r} given twice')
        if path != 'random' and not osp.isfile(path):
            raise SystemExit(f'--init {name}: {path} does not exist (README command 1 writes '
                             'work_dirs/demo/{cloc,clip}/iter_1200.pth)')
        inits[name] = path
    return inits


def subset_annotations(ann_file: str, num_images: int, out_file: str) -> str:
    """The first ``num_images`` images (by file name, in file order) of a COCO-style file
    and their annotations: mmdet's COCO metrics score every image of their ``ann_file``,
    so a validation subset needs its own file. MDETR-style RefCOCO files have one image
    entry per expression: all the expressions of the kept images stay."""
    with open(ann_file) as f:
        coco = json.load(f)
    names: List[str] = []
    for image in coco['images']:
        if image['file_name'] not in names:
            names.append(image['file_name'])
    keep_names = set(names[:num_images])
    images = [im for im in coco['images'] if im['file_name'] in keep_names]
    ids = {im['id'] for im in images}
    coco.update(images=images, annotations=[a for a in coco['annotations'] if a['image_id'] in ids])
    with open(out_file, 'w') as f:
        json.dump(coco, f)
    return out_file


def conversion_report(output: str) -> List[str]:
    """The converter's report (from its ``SRC -> DST`` line on), without the log lines
    and warnings that precede it."""
    lines = output.strip().splitlines()
    start = next((i for i, line in enumerate(lines) if ' -> ' in line and 'mmengine' not in line), 0)
    return lines[start:]


def param_schedulers(kind: str, iters: int, warmup: int) -> list:
    warmup = min(warmup, iters // 2)
    schedulers = []
    if warmup:
        schedulers.append(dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
                               end=warmup))
    if kind == 'step':
        schedulers.append(dict(type='MultiStepLR', by_epoch=False, begin=0, end=iters,
                               milestones=[max(int(iters * 0.8), 1)], gamma=0.1))
    elif kind == 'cosine':
        schedulers.append(dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup,
                               end=iters, T_max=max(iters - warmup, 1), eta_min=0.))
    else:
        schedulers.append(dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0,
                               end=iters))
    return schedulers


def run_config(task: str, args, checkpoint: str, seed: int, run_dir: str,
               val_ann: Optional[str]):
    """The task config with this run's checkpoint, schedule, seed and optimiser."""
    from mmengine.config import Config

    cfg = Config.fromfile(osp.join(ROOT, TASKS[task]['config']))
    for key in ('backbone', 'language_model'):
        if cfg.model.get(key) is not None and cfg.model[key].get('init_cfg'):
            cfg.model[key].init_cfg.checkpoint = checkpoint
    cfg.work_dir = run_dir
    cfg.randomness = dict(seed=seed, deterministic=False)
    cfg.train_cfg.update(max_iters=args.iters, val_interval=args.val_interval)
    cfg.param_scheduler = param_schedulers(args.schedule, args.iters, args.warmup)
    cfg.default_hooks.checkpoint.update(interval=args.iters, max_keep_ckpts=1, save_best=None)
    cfg.default_hooks.logger.interval = args.log_interval
    # validation metrics at the iteration they were computed (not epoch 0) in scalars.json
    cfg.default_hooks.logger.log_metric_by_epoch = False
    cfg.log_processor.window_size = args.log_interval
    optim = cfg.optim_wrapper
    if args.lr is not None:
        optim.optimizer.lr = args.lr
    if args.layer_decay is not None:
        optim.paramwise_cfg.layer_decay_rate = args.layer_decay
    if args.text_tower == 'frozen' and cfg.model.get('language_model') is not None:
        optim.paramwise_cfg.custom_keys['language_model'] = dict(lr_mult=0., decay_mult=0.)
    if val_ann is not None:
        cfg.val_dataloader.dataset.ann_file = val_ann
        cfg.val_evaluator.ann_file = val_ann
    return cfg


def iteration_times(run_dir: str) -> Dict[str, Optional[float]]:
    """Seconds per training iteration (data loading included; the mean of MMEngine's
    logged windows after the first one) and per validation batch, from scalars.json."""
    from cllip_mm.utils.logs import load_scalars
    records = load_scalars(run_dir)
    train = [r['time'] for r in records if 'time' in r and 'loss' in r]
    val = [r['time'] for r in records if 'time' in r and 'loss' not in r and 'lr' not in r]
    train = train[1:] or train
    return dict(sec_per_iter=statistics.mean(train) if train else None,
                val_sec_per_batch=statistics.mean(val) if val else None)


def val_curves(run_dir: str, keys: Sequence[str]) -> Dict[str, list]:
    from cllip_mm.utils.logs import train_curve
    return {k: [[step, value] for step, value in train_curve(run_dir, k)] for k in keys}


def first_reach(curve: Sequence[Sequence[float]], target: float) -> Optional[int]:
    """The first validation step whose value is at least ``target``."""
    return next((int(step) for step, value in curve if value >= target), None)


def reach_table(curves: Dict[str, list]) -> Dict[str, Dict[str, Optional[int]]]:
    """init -> other init -> the iterations this init needs to reach the other's final
    validation value (None: not within the schedule)."""
    out = {}
    for name, curve in curves.items():
        out[name] = {other: first_reach(curve, ocurve[-1][1]) if curve and ocurve else None
                     for other, ocurve in curves.items() if other != name}
    return out


def mean_curve(curves: Sequence[list]) -> list:
    """Point-wise mean over seeds (steps common to every seed)."""
    if not curves:
        return []
    steps = sorted(set.intersection(*(set(s for s, _ in c) for c in curves)))
    return [[s, statistics.mean(dict(map(tuple, c))[s] for c in curves)] for s in steps]


def plot(summary: dict, out: str) -> str:
    """One panel per task (its headline metric), one line per init (mean over seeds;
    the final test value as a marker)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    tasks = list(summary['curves'])
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        key = TASKS[task]['metrics'][0]
        for init, curve in summary['curves'][task].items():
            if curve:
                line, = ax.plot(*zip(*curve), marker='.', label=init)
                final = summary['results'][task][init]['test'].get(key)
                if final is not None:
                    ax.plot([curve[-1][0]], [final], marker='*', ms=10, color=line.get_color())
        ax.set_title(f'{task}: {key}')
        ax.set_xlabel('fine-tuning iteration')
        ax.grid(alpha=0.3)
        ax.legend(title='init (* test)')
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def fmt(values: Sequence[float], digits: int = 3) -> str:
    if not values:
        return '-'
    if len(values) == 1:
        return f'{values[0]:.{digits}f}'
    return f'{statistics.mean(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})'


def markdown(summary: dict) -> str:
    """One row per init: each task's test metrics (mean over seeds, range in brackets),
    then each task's seconds per iteration (MMEngine's, wall; iterations per second; the
    CPU-time estimate) and minutes of train + test (wall; CPU), means over seeds. On a
    machine shared with other jobs the CPU figures are what a run would take alone."""
    tasks, inits = list(summary['results']), summary['inits']
    metric_cols = [(t, m) for t in tasks for m in TASKS[t]['metrics']]
    head = (['init'] + [f'{t} {m.split("/")[-1]}' for t, m in metric_cols]
            + [f'{t} s/it (it/s; cpu s/it)' for t in tasks]
            + [f'{t} min (cpu min)' for t in tasks])
    rows = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for init in inits:
        cells = [init]
        for task, metric in metric_cols:
            runs = summary['results'][task][init]['runs']
            cells.append(fmt([r['test'][metric] for r in runs if metric in r.get('test', {})]))
        for task in tasks:
            runs = summary['results'][task][init]['runs']
            spi = [r['sec_per_iter'] for r in runs if r.get('sec_per_iter')]
            cpu = [r['cpu_sec_per_iter'] for r in runs if r.get('cpu_sec_per_iter')]
            cells.append(f'{statistics.mean(spi):.3f} ({1 / statistics.mean(spi):.2f}; '
                         f'cpu {statistics.mean(cpu):.3f})' if spi and cpu else '-')
        for task in tasks:
            runs = [r for r in summary['results'][task][init]['runs'] if 'test_seconds' in r]
            wall = [(r['train_seconds'] + r['test_seconds']) / 60 for r in runs]
            cpu = [(r['train_cpu_seconds'] + r['test_cpu_seconds']) / 60 for r in runs]
            cells.append(f'{statistics.mean(wall):.1f} (cpu {statistics.mean(cpu):.1f})'
                         if wall else '-')
        rows.append('| ' + ' | '.join(cells) + ' |')
    lines = [f'{summary["iters"]} iterations, seeds {summary["seeds"]}, '
             f'schedule {summary["schedule"]}, text tower {summary["text_tower"]}', ''] + rows
    lines += ['', 'Iterations each init needs to reach the final validation value of another '
              '(headline metric, mean over seeds; - = not within the schedule):', '']
    for task, table in summary['reach'].items():
        for init, others in table.items():
            lines.append(f'- {task} ({TASKS[task]["metrics"][0]}): {init} reaches '
                         + ', '.join(f'{o} at {v if v is not None else "-"}'
                                     for o, v in others.items()))
    return '\n'.join(lines)


def fine_tune(task: str, init: str, seed: int, checkpoint: str, args, env: dict,
              work_dir: str, val_ann: Optional[str]) -> dict:
    """mmdet's train.py then test.py for one (task, init, seed); returns its record."""
    py, tools = sys.executable, e2e.mmdet_tools()
    run_dir = osp.join(work_dir, task, f'{init}_s{seed}')
    os.makedirs(run_dir, exist_ok=True)
    config = osp.join(run_dir, 'config.py')
    run_config(task, args, checkpoint, seed, run_dir, val_ann).dump(config)
    record = dict(task=task, init=init, seed=seed, run_dir=run_dir, config=config)
    train = [py, osp.join(tools, 'train.py'), config, '--work-dir', run_dir]
    last = osp.join(run_dir, f'iter_{args.iters}.pth')
    test = [py, osp.join(tools, 'test.py'), config, last, '--work-dir', osp.join(run_dir, 'test')]
    if args.dry_run:
        return dict(record, commands=[' '.join(train), ' '.join(test)])
    stats = {}
    e2e.run(train, env, osp.join(run_dir, 'train.log'), stats)
    record.update(train_seconds=round(stats['wall'], 1), train_cpu_seconds=round(stats['cpu'], 1))
    e2e.run(test, env, osp.join(run_dir, 'test.log'), stats)
    record.update(test_seconds=round(stats['wall'], 1), test_cpu_seconds=round(stats['cpu'], 1))
    if not args.keep_checkpoints:
        os.remove(last)

    from cllip_mm.utils.logs import test_metrics
    test = test_metrics(osp.join(run_dir, 'test'))
    record['test'] = {k: v for k, v in test.items() if '/' in k}
    record.update(iteration_times(run_dir))
    if record['sec_per_iter']:
        record['iters_per_sec'] = 1 / record['sec_per_iter']
        # start-up, checkpoint and the validations
        record['other_train_seconds'] = round(
            record['train_seconds'] - args.iters * record['sec_per_iter'], 1)
        # what an iteration costs alone on a core (the logged wall time scaled by the
        # training process's CPU share; equal to it on a free machine)
        share = min(record['train_cpu_seconds'] / record['train_seconds'], 1.0)
        record['cpu_share'] = round(share, 3)
        record['cpu_sec_per_iter'] = record['sec_per_iter'] * share
    record['val'] = val_curves(run_dir, TASKS[task]['metrics'])
    missing = [m for m in TASKS[task]['metrics'] if m not in record['test']]
    if missing:
        raise RuntimeError(f'{run_dir}/test: metrics {missing} not reported by test.py')
    record['schedule_key'] = schedule_key(args)
    with open(osp.join(run_dir, 'record.json'), 'w') as f:
        json.dump(record, f, indent=2)
    return record


def schedule_key(args) -> dict:
    """What must match for a recorded run to be reused."""
    return dict(iters=args.iters, val_interval=args.val_interval, val_images=args.val_images,
                schedule=args.schedule, warmup=args.warmup, lr=args.lr,
                layer_decay=args.layer_decay, text_tower=args.text_tower)


def recorded(task: str, init: str, seed: int, args, work_dir: str) -> Optional[dict]:
    """The record of a finished run of this schedule, or None."""
    path = osp.join(work_dir, task, f'{init}_s{seed}', 'record.json')
    if not osp.exists(path):
        return None
    with open(path) as f:
        record = json.load(f)
    return record if record.get('schedule_key') == schedule_key(args) else None


def main(argv=None) -> int:
    args = parse_args(argv)
    inits = parse_inits(args.init)
    work_dir = osp.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    env = e2e.subprocess_env(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    failures: List[str] = []
    started = time.perf_counter()

    if not osp.isfile(osp.join(args.data_root, 'annotations', 'train.jsonl')):
        raise SystemExit(f'--data-root {args.data_root}: no annotations/train.jsonl (write the '
                         'set with README command 1 or generate_synthetic_regions.py)')
    data_root = e2e.prepare_data(args.data_root, work_dir, env, convert=False)
    env['CLOC_SYNTHETIC_ROOT'] = data_root.rstrip('/') + '/'
    os.environ['CLOC_SYNTHETIC_ROOT'] = env['CLOC_SYNTHETIC_ROOT']  # for run_config

    # validation subsets (mmdet's COCO metrics score every image of their ann_file)
    val_anns: Dict[str, Optional[str]] = {}
    for task in args.tasks:
        val_anns[task] = None
        if args.val_images:
            name = TASKS[task]['val_ann']
            out = osp.join(work_dir, 'data', f'first{args.val_images}_{name}')
            os.makedirs(osp.dirname(out), exist_ok=True)
            val_anns[task] = subset_annotations(osp.join(data_root, 'mmdet', name),
                                                args.val_images, out)

    # convert every init once, checked against the tiny Grounding DINO's encoders
    converted, conversions = {}, {}
    for name, source in ({} if args.table_only else inits).items():
        ckpt_dir = osp.join(work_dir, 'checkpoints')
        if source == 'random':
            source = e2e.make_cloc_checkpoint(osp.join(data_root, 'tokenizer'),
                                              osp.join(ckpt_dir, f'{name}_random.pth'),
                                              args.random_config, seed=0)
        converted[name] = osp.join(ckpt_dir, f'{name}_mmdet.pth')
        start = time.perf_counter()
        report = e2e.convert_checkpoint(osp.abspath(source), converted[name],
                                        dict(env, CLOC_TINY_CHECKPOINT=converted[name]),
                                        osp.join(ckpt_dir, f'{name}_convert.log'),
                                        config=CHECK_CONFIG)
        conversions[name] = dict(source=osp.abspath(source), converted=converted[name],
                                 seconds=round(time.perf_counter() - start, 1),
                                 report=conversion_report(report))
        print(f'[{name}] {source} -> {converted[name]}', flush=True)

    jobs = [(task, name, seed) for task in args.tasks for name in inits for seed in args.seeds]

    def one(job):
        task, name, seed = job
        if args.reuse or args.table_only:
            record = recorded(task, name, seed, args, work_dir)
            if record is not None or args.table_only:
                return record
        try:
            record = fine_tune(task, name, seed, converted[name], args, env, work_dir,
                               val_anns[task])
            print(f'[{task} {name} s{seed}] ' + json.dumps(
                {k: record.get(k) for k in ('test', 'sec_per_iter', 'train_seconds',
                                            'test_seconds', 'commands') if k in record}),
                flush=True)
            return record
        except RuntimeError as error:
            failures.append(f'{task} {name} s{seed}: {error}')
            print(f'[{task} {name} s{seed}] FAILED: {error}', flush=True)
            return dict(task=task, init=name, seed=seed, error=str(error))

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        records = [r for r in pool.map(one, jobs) if r is not None]

    summary = dict(
        command=' '.join([osp.relpath(__file__, ROOT)] + (argv if argv is not None else sys.argv[1:])),
        inits=list(inits), seeds=args.seeds, iters=args.iters, val_interval=args.val_interval,
        val_images=args.val_images, schedule=args.schedule, warmup=args.warmup,
        text_tower=args.text_tower, layer_decay=args.layer_decay, lr=args.lr, jobs=args.jobs,
        threads=args.threads, data_root=data_root, conversions=conversions,
        results={}, curves={}, reach={}, failures=failures)
    if args.dry_run:
        summary['runs'] = records
        print(json.dumps(summary, indent=2))
        return 0
    for task in args.tasks:
        key = TASKS[task]['metrics'][0]
        summary['results'][task] = {}
        summary['curves'][task] = {}
        for name in inits:
            runs = [r for r in records if r['task'] == task and r['init'] == name]
            tests = [r['test'] for r in runs if 'test' in r]
            summary['results'][task][name] = dict(
                runs=runs,
                test={m: statistics.mean(t[m] for t in tests) for m in TASKS[task]['metrics']
                      if tests and all(m in t for t in tests)})
            summary['curves'][task][name] = mean_curve(
                [r['val'][key] for r in runs if r.get('val', {}).get(key)])
        summary['reach'][task] = reach_table(summary['curves'][task])
    summary['wall_minutes'] = round((time.perf_counter() - started) / 60, 1)

    with open(osp.join(work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    table = markdown(summary)
    with open(osp.join(work_dir, 'summary.md'), 'w') as f:
        f.write(table + '\n')
    try:
        plot(summary, osp.join(work_dir, 'curves.png'))
    except Exception as error:  # a missing matplotlib must not lose the table
        failures.append(f'plot: {error}')
    print(json.dumps({k: summary[k] for k in ('results', 'reach', 'failures', 'wall_minutes')},
                     indent=2, default=str))
    print(table)
    print(f'wrote {work_dir}/summary.json, summary.md, curves.png '
          f'({summary["wall_minutes"]} min)')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
