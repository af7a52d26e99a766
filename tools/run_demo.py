# Copyright (c) cllip_mm contributors. All rights reserved.
"""The main job: train CLOC and its CLIP baseline on the embedded synthetic set and
print their metrics side by side, in distribution and on two shifted sets.

    python tools/run_demo.py                       # data/cloc_demo, work_dirs/demo
    python tools/run_demo.py --seed 1 --data-seed 7 --min-objects 3 --max-objects 7 \
        --data-root data/cloc_demo_s7 --work-dir work_dirs/demo_s7
    python tools/run_demo.py --recipe from-clip    # continue from work_dirs/demo/clip

Steps: write the synthetic set (seeded) and its shifted evaluation sets
(:mod:`cllip_mm.datasets.synthetic_shift`) unless they are there, run ``tools/train.py``
on the CLOC and CLIP configs of the recipe (same data, schedule and budget), evaluate
each final checkpoint on the shifted sets with ``tools/test.py``, print a table and
JSON, save ``summary.json`` and a PNG of the ``loss_clip`` / ``loss_region`` curves.

The models train at the same time (``--jobs``, default one per model up to the CPU
count), each on its share of the cores (``OMP_NUM_THREADS``) with its output in
``WORK_DIR/<model>.log``: the small demo models use two threads poorly, so this is
faster than one after the other on two threads each.

Recipes: ``scratch`` (both models from random init, 1200 iterations), ``from-clip``
(the ``scratch`` CLIP checkpoint continued for 600 iterations with CLOC's losses, or
with the CLIP loss alone; ``--config`` picks the 200- or 400-iteration pairs), ``paper``
(the paper's CLOC, ``PAPER``, beside ours, ``CLOC``, and the CLIP baseline; ``--models
PAPER`` trains it alone) and ``paper-ablations`` (the paper's Table 2 ablations of its
recipe: RoI alignment instead of the Prompter, no text filtering, no grounding loss,
M = 2).
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402

from cllip_mm.datasets.synthetic_shift import SHIFTS, generate_shifted_regions  # noqa: E402
from cllip_mm.utils.logs import last_metrics, test_metrics  # noqa: E402
from cllip_mm.utils.plot import plot_curves  # noqa: E402

RECIPES = {
    'scratch': {
        'CLOC': 'configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py',
        'CLIP': 'configs/clip/clip_vit-tiny-p8_1xb64-1200it_synthetic.py',
    },
    'from-clip': {
        'CLOC': 'configs/cloc/cloc_vit-tiny-p8_clip-pre_1xb64-600it_synthetic.py',
        'CLIP': 'configs/clip/clip_vit-tiny-p8_clip-pre_1xb64-600it_synthetic.py',
    },
    # The paper's CLOC beside ours and the CLIP baseline (same data, schedule, budget).
    'paper': {
        'PAPER': 'configs/cloc/cloc-paper_vit-tiny-p8_1xb64-1200it_synthetic.py',
        'CLOC': 'configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py',
        'CLIP': 'configs/clip/clip_vit-tiny-p8_1xb64-1200it_synthetic.py',
    },
    # The paper's Table 2 ablations of its recipe, on the demo.
    'paper-ablations': {
        'ROI': 'configs/cloc/cloc-paper-roi_vit-tiny-p8_1xb64-1200it_synthetic.py',
        'NO_FILTER': 'configs/cloc/cloc-paper-nofilter_vit-tiny-p8_1xb64-1200it_synthetic.py',
        'NO_GROUND': 'configs/cloc/cloc-paper-noground_vit-tiny-p8_1xb64-1200it_synthetic.py',
        'M2': 'configs/cloc/cloc-paper-m2_vit-tiny-p8_1xb64-1200it_synthetic.py',
        # [ours] not an ablation of the paper's: patch tokens encoded in the corners' basis
        'PATCH_POS': 'configs/cloc/cloc-paper-patchpos_vit-tiny-p8_1xb64-1200it_synthetic.py',
        # a control: the RoI ablation without text filtering
        'ROI_NO_FILTER':
            'configs/cloc/cloc-paper-roi-nofilter_vit-tiny-p8_1xb64-1200it_synthetic.py',
        # [ours] the paper's recipe with the Prompter's pool over the box, no text filtering
        'BOX_POOL': 'configs/cloc/cloc-paper-boxpool-nofilter_vit-tiny-p8_1xb64-1200it_synthetic.py',
        # [ours] the same with a 2 x 2 grid of cells over the box
        'BOX_GRID': 'configs/cloc/cloc-paper-boxgrid-nofilter_vit-tiny-p8_1xb64-1200it_synthetic.py',
    },
}
SHIFT_ROWS = [
    ('region_cls/top1', 'region top-1'),
    ('region_cls/mean_class_acc', 'region mean per-class acc'),
    ('grounding/acc@0.5', 'grounding acc'),
]
ROWS = [
    ('region_cls/top1', 'region classification top-1 (GT boxes, zero-shot)'),
    ('region_cls/mean_class_acc', 'region classification mean per-class acc'),
    ('retrieval/i2t_R@1', 'image->text R@1'),
    ('retrieval/t2i_R@1', 'text->image R@1'),
    ('retrieval/mean_R@1', 'image-text mean R@1'),
    ('retrieval/mean_R@5', 'image-text mean R@5'),
    ('grounding/acc@0.5', 'grounding acc (IoU>=0.5, text->box)'),
    ('grounding/whole_image_acc@0.5', 'grounding acc of "whole image" baseline'),
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-root', default='data/cloc_demo')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--seed', type=int, default=0, help='training seed')
    parser.add_argument('--data-seed', type=int, default=0, help='seed of the synthetic set')
    parser.add_argument('--min-objects', type=int, default=2)
    parser.add_argument('--max-objects', type=int, default=6)
    parser.add_argument('--num-train', type=int, default=4000)
    parser.add_argument('--num-val', type=int, default=500)
    parser.add_argument('--recipe', choices=list(RECIPES), default='scratch')
    parser.add_argument('--clip-checkpoint', default='work_dirs/demo/clip/iter_1200.pth',
                        help="the CLIP checkpoint the 'from-clip' recipe continues from")
    parser.add_argument('--shifts', nargs='*', default=sorted(SHIFTS), choices=sorted(SHIFTS),
                        help='shifted evaluation sets (written under DATA_ROOT/shifts/)')
    parser.add_argument('--num-shift', type=int, default=500, help='images per shifted set')
    parser.add_argument('--models', nargs='+', default=None,
                        help="the recipe's models to run (default: all of them)")
    parser.add_argument('--reuse', action='store_true',
                        help='reuse a model whose work dir already holds final val metrics')
    parser.add_argument('--config', nargs='+', default=[], metavar='MODEL=CONFIG',
                        help="a model's config in place of the recipe's, e.g. "
                        'CLOC=configs/cloc/my_variant.py (to compare a variant with the demo)')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra overrides passed to every tools/train.py run')
    parser.add_argument('--jobs', type=int, default=None,
                        help='models trained and evaluated at once, the CPU cores split between '
                        'them (default: one per model, at most the CPU count)')
    args = parser.parse_args()
    if args.jobs is not None and args.jobs < 1:
        parser.error(f'--jobs must be >= 1, got {args.jobs}')
    unknown = set(args.models or ()) - set(RECIPES[args.recipe])
    if unknown:
        parser.error(f'--models: {sorted(unknown)} not in recipe {args.recipe!r} '
                     f'({sorted(RECIPES[args.recipe])})')
    args.models = args.models or list(RECIPES[args.recipe])
    cpus = os.cpu_count() or 1
    args.jobs = args.jobs or max(1, min(len(args.models), cpus))
    args.threads = max(1, cpus // args.jobs)
    args.configs = dict(RECIPES[args.recipe])
    for item in args.config:
        name, sep, path = item.partition('=')
        if not sep or name not in args.configs:
            parser.error(f'--config takes MODEL=CONFIG with MODEL in {sorted(args.configs)}, '
                         f'got {item!r}')
        args.configs[name] = osp.abspath(path)
    return args


def ensure_data(args) -> None:
    if osp.exists(osp.join(args.data_root, 'annotations', 'val.jsonl')):
        print(f'[demo] using the synthetic set in {args.data_root}')
        return
    subprocess.run([
        sys.executable, osp.join(ROOT, 'tools/dataset_converters/generate_synthetic_regions.py'),
        '--out', args.data_root, '--seed', str(args.data_seed), '--num-train', str(args.num_train),
        '--num-val', str(args.num_val), '--min-objects', str(args.min_objects),
        '--max-objects', str(args.max_objects)
    ], check=True)


def shift_root(args, shift: str) -> str:
    return osp.join(args.data_root, 'shifts', shift)


def ensure_shift_data(args) -> None:
    for shift in args.shifts:
        root = shift_root(args, shift)
        if osp.exists(osp.join(root, 'annotations', 'val.jsonl')):
            continue
        summary = generate_shifted_regions(root, shift, num=args.num_shift, seed=args.data_seed)
        print(f'[demo] wrote the shifted set {shift!r}: {summary["num_images"]} images, '
              f'{summary["num_regions"]} regions in {root}', flush=True)


def data_options(data_root: str, tokenizer_root: str, config: str) -> list:
    """Overrides that point ``config`` at ``data_root`` and at the tokenizer of the same
    name (``tokenizer``, ``tokenizer_t5``) under ``tokenizer_root``."""
    data_root = data_root.rstrip('/') + '/'
    try:
        tokenizer = osp.basename(Config.fromfile(config).model.tokenizer.path.rstrip('/'))
    except FileNotFoundError:  # tools/train.py reports the missing config in the model's log
        tokenizer = 'tokenizer'
    return [f'train_dataloader.dataset.data_root={data_root}',
            f'val_dataloader.dataset.data_root={data_root}',
            f'test_dataloader.dataset.data_root={data_root}',
            f'model.tokenizer.path={osp.join(tokenizer_root, tokenizer)}']


_running = set()  # Popen of the subprocesses in flight (``--jobs`` > 1)
_stopping = threading.Event()  # set when one model failed: the others stop


def run(cmd: list, name: str, args) -> None:
    """Run ``cmd``; with ``--jobs`` > 1 on its share of the cores, output in ``WORK_DIR/<name>.log``."""
    if args.jobs == 1:
        subprocess.run(cmd, check=True)
        return
    log = osp.join(args.work_dir, f'{name.lower()}.log')
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    with open(log, 'a') as f:
        f.write(f'$ {" ".join(cmd)}\n')
        f.flush()
        if _stopping.is_set():
            raise RuntimeError(f'{name}: not started, another model failed')
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        _running.add(proc)
        try:
            returncode = proc.wait()
        finally:
            _running.discard(proc)
    if returncode:
        if _stopping.is_set():
            raise RuntimeError(f'{name}: stopped, another model failed')
        with open(log) as f:
            sys.stderr.write(''.join(f.readlines()[-40:]))
        raise RuntimeError(f'{name}: {osp.basename(cmd[1])} exited with {returncode}; '
                           f'its output is in {log} (last lines above)')


def last_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def train(name: str, args) -> dict:
    config = osp.join(ROOT, args.configs[name])
    work_dir = osp.join(args.work_dir, name.lower())
    metrics = None
    if args.reuse:
        try:
            metrics = last_metrics(work_dir)
        except (FileNotFoundError, KeyError):
            pass
    if metrics is None:
        extra = []
        if args.recipe == 'from-clip':
            extra.append(f'model.init_cfg.checkpoint={args.clip_checkpoint}')
        cmd = [
            sys.executable, osp.join(ROOT, 'tools/train.py'), config, '--work-dir', work_dir,
            '--cfg-options', f'randomness.seed={args.seed}',
            *data_options(args.data_root, args.data_root, config), *extra, *args.cfg_options
        ]
        print(f'[demo] training {name}: {" ".join(cmd)}', flush=True)
        start = time.time()
        run(cmd, name, args)
        metrics = last_metrics(work_dir)
        metrics['train_minutes'] = round((time.time() - start) / 60, 2)
    for shift in args.shifts:
        metrics.update({f'shift/{shift}/{k}': v
                        for k, v in evaluate(name, config, last_checkpoint(work_dir), shift, args).items()})
    return metrics


def evaluate(name: str, config: str, checkpoint: str, shift: str, args) -> dict:
    """Metrics of ``checkpoint`` on a shifted set, through ``tools/test.py``."""
    work_dir = osp.join(args.work_dir, name.lower(), f'test_{shift}')
    if args.reuse:
        try:
            return test_metrics(work_dir)
        except FileNotFoundError:
            pass
    cmd = [
        sys.executable, osp.join(ROOT, 'tools/test.py'), config, checkpoint, '--work-dir', work_dir,
        '--cfg-options', *data_options(shift_root(args, shift), args.data_root, config), *args.cfg_options
    ]
    print(f'[demo] evaluating {name} on {shift!r}: {" ".join(cmd)}', flush=True)
    run(cmd, name, args)
    return test_metrics(work_dir)


def _num(value) -> float:
    return float('nan') if value is None else value


def main():
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    ensure_data(args)
    ensure_shift_data(args)
    if args.jobs > 1:
        print(f'[demo] {args.jobs} models at a time, {args.threads} thread(s) each; their output '
              f'goes to {osp.join(args.work_dir, "<model>.log")}', flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {name: pool.submit(train, name, args) for name in args.models}
        done, _ = wait(futures.values(), return_when=FIRST_EXCEPTION)
        failed = [future for future in done if future.exception()]
        if failed:  # stop the other models now rather than after their whole run
            _stopping.set()
            for proc in list(_running):
                proc.terminate()
            pool.shutdown(cancel_futures=True)
            raise failed[0].exception()
        results = {name: future.result() for name, future in futures.items()}

    rows = ROWS + [(f'shift/{s}/{k}', f'{s}: {label}') for s in args.shifts for k, label in SHIFT_ROWS]
    rows += [('train_minutes', 'training time (min)')]
    names = list(results)
    print('\n' + f'{"metric (val split; shifted sets)":<48}' + ''.join(f'{n:>10}' for n in names))
    for key, label in rows:
        cells = ''.join(f'{_num(results[n].get(key)):>10.3f}' for n in names)
        print(f'{label:<48}{cells}')
    summary = dict(data_root=args.data_root, seed=args.seed, recipe=args.recipe,
                   results={n: {k: results[n].get(k) for k, _ in rows} for n in names})
    if 'CLOC' in results and 'CLIP' in results:
        summary['region_top1_margin'] = results['CLOC']['region_cls/top1'] - results['CLIP']['region_cls/top1']
        summary['mean_R@1_gap'] = results['CLOC']['retrieval/mean_R@1'] - results['CLIP']['retrieval/mean_R@1']
        for shift in args.shifts:
            key = f'shift/{shift}/region_cls/top1'
            summary[f'{shift}_region_top1_margin'] = results['CLOC'][key] - results['CLIP'][key]
    if 'PAPER' in results and 'CLIP' in results:
        summary['paper_region_top1_margin'] = (results['PAPER']['region_cls/top1']
                                               - results['CLIP']['region_cls/top1'])
    with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary))

    png = plot_curves([osp.join(args.work_dir, n.lower()) for n in names], names,
                      ['loss_clip', 'loss_region'], osp.join(args.work_dir, 'curves.png'))
    print(f'[demo] summary: {osp.join(args.work_dir, "summary.json")}, curves: {png}')


if __name__ == '__main__':
    main()
