# Copyright (c) cllip_mm contributors. All rights reserved.
"""Pretrain -> convert -> fine-tune, end to end through MMDetection's own tools.

For every tiny downstream config (configs/downstream/*/*vit-tiny-p8*.py) this runs, each in a
subprocess: mmdet's ``tools/train.py`` for a few iterations (Grounding DINO configs)
and ``tools/test.py`` (on the fine-tuned checkpoint, or on the converted one for the
zero-shot Prompter config), from a tiny CLOC checkpoint converted by
``tools/model_converters/cllip_to_mmdet.py``. It checks that mmdet's metric names are
printed and prints one JSON document with the metrics and wall times.

    python benchmarks/mmdet_downstream_e2e.py                 # random tiny CLOC, new data
    python benchmarks/mmdet_downstream_e2e.py \\
        --cloc-checkpoint work_dirs/cloc_vit-tiny-p8_1xb64-1200it_synthetic/iter_1200.pth \\
        --data-root data/cloc_demo --iters 200

Exit status 1 if a step fails or a metric name is missing.
"""
import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from typing import Optional

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

CONFIGS = {
    'ov_coco': ('configs/downstream/ov_coco/grounding-dino_cloc-vit-tiny-p8_1xb2-4it_ov-synthetic.py',
                ('coco/novel_ap50', 'coco/base_ap50', 'coco/bbox_mAP')),
    'refexp': ('configs/downstream/refcoco/grounding-dino_cloc-vit-tiny-p8_1xb2-4it_refexp-synthetic.py',
               ('refexp/refcoco_precision@1', 'refexp/mean_precision')),
    'ov_region_cls': ('configs/downstream/ov_region_cls/cloc-prompter_vit-tiny-p8_zeroshot_ov-synthetic.py',
                      ('coco/novel_ap50', 'coco/base_ap50', 'coco/bbox_mAP')),
}
TINY_CLOC_CFG = 'configs/_base_/models/cloc_vit-tiny-p8.py'


def mmdet_tools() -> str:
    import mmdet
    return osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools')


def run(cmd, env, log_path, stats: Optional[dict] = None) -> str:
    """Run ``cmd``; keep its output in ``log_path``; return it (raise on failure).
    ``stats``, when given, receives the command's ``wall`` and ``cpu`` (user + system)
    seconds: on a shared machine the CPU time is what the command would take alone."""
    start = time.perf_counter()
    os.makedirs(osp.dirname(osp.abspath(log_path)), exist_ok=True)
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if stats is not None:
        stats.update(wall=time.perf_counter() - start, cpu=usage.ru_utime + usage.ru_stime)
    with open(log_path) as f:
        output = f.read()
    if proc.returncode:
        tail = '\n'.join(output.splitlines()[-30:])
        raise RuntimeError(f'{" ".join(cmd)} failed ({proc.returncode}); log: {log_path}\n{tail}')
    return output


def final_metrics(output: str, mode: str) -> dict:
    """``name: value`` pairs of the last ``Iter(<mode>)`` / ``Epoch(<mode>)`` line with
    metrics (mmengine's LoggerHook)."""
    lines = [line for line in output.splitlines()
             if re.search(rf'(Iter|Epoch)\({mode}\)', line) and ('coco/' in line or 'refexp/' in line)]
    if not lines:
        return {}
    return {k: float(v) for k, v in re.findall(r'(\S+/\S+): (-?[\d.]+)', lines[-1])}


def make_cloc_checkpoint(tokenizer_dir: str, path: str, config: str = TINY_CLOC_CFG,
                         seed: int = 0) -> str:
    """Save a randomly initialised cllip_mm model (``config``: a model config such as
    configs/_base_/models/cloc_vit-tiny-p8.py, or a full pretraining config such as the
    demo's CLOC / CLIP ones) as an MMEngine checkpoint at ``path``; return ``path``."""
    import torch
    from mmengine import Config

    import cllip_mm.models  # noqa: F401
    from cllip_mm.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, config)).model
    cfg.tokenizer.path = tokenizer_dir
    torch.manual_seed(seed)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    torch.save({'state_dict': MODELS.build(cfg).state_dict(),
                'meta': dict(random_init=True, config=config, seed=seed)}, path)
    return path


def subprocess_env(**extra: str) -> dict:
    """This environment with the repository on ``PYTHONPATH`` (plus ``extra``)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    env.update(extra)
    return env


def prepare_data(data_root: Optional[str], work_dir: str, env: dict, num_train: int = 32,
                 num_val: int = 16, convert: bool = True) -> str:
    """The synthetic set in mmdet's formats: ``data_root`` (a new one under ``work_dir``
    when None), converted by synthetic_to_coco.py into ``<data_root>/mmdet`` (always when
    ``convert``, else only when that folder is missing). Returns the absolute root."""
    py = sys.executable
    root = osp.abspath(data_root) if data_root else osp.join(work_dir, 'data')
    if not data_root:
        run([py, 'tools/dataset_converters/generate_synthetic_regions.py', '--out', root,
             '--num-train', str(num_train), '--num-val', str(num_val)], env,
            osp.join(work_dir, 'generate.log'))
    if convert or not osp.isdir(osp.join(root, 'mmdet')):
        run([py, 'tools/dataset_converters/synthetic_to_coco.py', root], env,
            osp.join(work_dir, 'synthetic_to_coco.log'))
    return root


def convert_checkpoint(source: str, dst: str, env: dict, log_path: str,
                       config: Optional[str] = None) -> str:
    """tools/model_converters/cllip_to_mmdet.py ``source`` -> ``dst`` (checked against
    ``config``'s model when given); returns its report (raises if it fails)."""
    cmd = [sys.executable, 'tools/model_converters/cllip_to_mmdet.py', source, dst]
    return run(cmd + (['--config', config] if config else []), env, log_path)


def schedule_options(iters: int) -> list:
    """``--cfg-options`` of a tiny config for ``iters`` iterations, validated at the end."""
    return ['--cfg-options', f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={iters}', f'param_scheduler.0.end={iters}']


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/mmdet_downstream_e2e')
    parser.add_argument('--cloc-checkpoint', help='a tiny CLOC pretraining checkpoint '
                        '(default: a randomly initialised one)')
    parser.add_argument('--data-root', help='a synthetic set (default: a new one in work-dir)')
    parser.add_argument('--num-train', type=int, default=32)
    parser.add_argument('--num-val', type=int, default=16)
    parser.add_argument('--iters', type=int, default=4, help='fine-tuning iterations')
    parser.add_argument('--only', nargs='+', choices=list(CONFIGS), default=list(CONFIGS))
    args = parser.parse_args(argv)

    work_dir = osp.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    env = subprocess_env()
    py = sys.executable
    timings, summary, failures = {}, {}, []

    start = time.perf_counter()
    data_root = prepare_data(args.data_root, work_dir, env, args.num_train, args.num_val)
    timings['data'] = time.perf_counter() - start

    start = time.perf_counter()
    source = args.cloc_checkpoint
    if source is None:
        source = make_cloc_checkpoint(osp.join(data_root, 'tokenizer'),
                                      osp.join(work_dir, 'cloc_tiny_random.pth'))
    converted = osp.join(work_dir, 'cloc_mmdet.pth')
    report = convert_checkpoint(source, converted, env, osp.join(work_dir, 'convert.log'))
    timings['convert'] = time.perf_counter() - start
    print(report)

    env.update(CLOC_SYNTHETIC_ROOT=data_root.rstrip('/') + '/', CLOC_TINY_CHECKPOINT=converted)
    tools = mmdet_tools()
    schedule = schedule_options(args.iters)
    for name in args.only:
        config, names = CONFIGS[name]
        run_dir = osp.join(work_dir, name)
        result = {}
        try:
            checkpoint = converted
            if 'zeroshot' not in config:
                start = time.perf_counter()
                out = run([py, osp.join(tools, 'train.py'), config, '--work-dir', run_dir]
                          + schedule, env, osp.join(work_dir, f'{name}_train.log'))
                timings[f'{name}/train'] = time.perf_counter() - start
                result['val'] = final_metrics(out, 'val')
                checkpoint = osp.join(run_dir, f'iter_{args.iters}.pth')
            start = time.perf_counter()
            out = run([py, osp.join(tools, 'test.py'), config, checkpoint, '--work-dir',
                       run_dir + '_test'], env, osp.join(work_dir, f'{name}_test.log'))
            timings[f'{name}/test'] = time.perf_counter() - start
            result['test'] = final_metrics(out, 'test')
            for split, metrics in result.items():
                missing = [n for n in names if n not in metrics]
                if missing:
                    failures.append(f'{name} ({split}): metrics {missing} not printed')
        except RuntimeError as e:
            failures.append(f'{name}: {e}')
        summary[name] = result

    print(json.dumps(dict(metrics=summary, seconds={k: round(v, 1) for k, v in timings.items()},
                          failures=failures), indent=2))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
