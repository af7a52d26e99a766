# Copyright (c) cllip_mm contributors. All rights reserved.
"""Train and evaluate the region-aware LLaVA with three vision towers, same LM, same budget.

    python tools/mllm/train_eval_region_mllm.py                  # the demo's checkpoints
    python tools/mllm/train_eval_region_mllm.py --max-iters 20 --max-eval-images 20  # smoke

Variants (``--variants``):

- ``CLIP``: the demo's CLIP baseline as the tower, boxes as text coordinates only;
- ``CLOC``: the demo's CLOC as the tower, boxes as text coordinates only;
- ``CLOC_REGION``: the CLOC tower and, after each box of a question, a region token made by
  CLOC's Prompter from the box and the image tokens (the paper's Ferret* variant).

Each variant: the same tokenizer (built from the training instructions), the same LM
config and seed, the same instructions, batches, schedule and number of iterations
(MMEngine's runner, :mod:`cllip_mm.mllm.engine`); the tower (and Prompter) frozen unless
``--train-vision-tower`` / ``--train-region-sampler``. Evaluation: greedy generation on
the val split and on the shifted sets under ``DATA_ROOT/shifts/`` that exist
(``restyled``, ``small_crowded``; written by ``tools/run_demo.py``), one referring, one
grounding and one relation question per image: referring accuracy (exact phrase),
grounding acc@0.5 (first box of the answer), relation accuracy, and the malformed answers
per task and reason. Prints one JSON object (also ``WORK_DIR/results.json``); each trained
model is saved with ``save_pretrained`` in ``WORK_DIR/<variant>/hf`` (load it with
``cllip_mm.mllm.RegionMLLM.from_pretrained``).

Needs the demo's checkpoints (``python tools/run_demo.py`` writes
``work_dirs/demo/{cloc,clip}/iter_1200.pth``) or any CLOC / CLIP pair given with
``--cloc-*`` / ``--clip-*``.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

from mmengine.config import DictAction

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

VARIANTS = {  # name: (tower, region token)
    'CLIP': ('clip', False),
    'CLOC': ('cloc', False),
    'CLOC_REGION': ('cloc', True),
}
SHIFTS = ('restyled', 'small_crowded')
HEADLINE = ('referring/acc', 'grounding/acc@0.5', 'relation/acc')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-root', default='data/cloc_demo')
    parser.add_argument('--cloc-config', default='configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py')
    parser.add_argument('--cloc-checkpoint', default='work_dirs/demo/cloc/iter_1200.pth')
    parser.add_argument('--clip-config', default='configs/clip/clip_vit-tiny-p8_1xb64-1200it_synthetic.py')
    parser.add_argument('--clip-checkpoint', default='work_dirs/demo/clip/iter_1200.pth')
    parser.add_argument('--tower-cfg-options', nargs='+', action=DictAction, default={},
                        metavar='KEY=VALUE',
                        help='overrides of both tower configs, e.g. model.tokenizer.path=...')
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument('--work-dir', default='work_dirs/region_mllm')
    parser.add_argument('--seed', type=int, default=0, help='LM init, batches, instructions')
    parser.add_argument('--max-iters', type=int, default=1000)
    parser.add_argument('--batch-size', type=int, default=16, help='conversations per batch')
    parser.add_argument('--turns', type=int, default=4, help='questions per conversation')
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--warmup-iters', type=int, default=50)
    parser.add_argument('--train-per-image', nargs=3, type=int, default=[2, 2, 1],
                        metavar=('REFERRING', 'GROUNDING', 'RELATION'),
                        help='training questions per image and task (at most)')
    parser.add_argument('--lm', default=None,
                        help='the LM text config as JSON (default: cllip_mm.mllm.DEFAULT_LM)')
    parser.add_argument('--train-vision-tower', action='store_true')
    parser.add_argument('--train-region-sampler', action='store_true')
    parser.add_argument('--max-eval-images', type=int, default=None,
                        help='images per evaluation set (default: all)')
    parser.add_argument('--eval-batch-size', type=int, default=64)
    parser.add_argument('--max-new-tokens', type=int, default=24)
    parser.add_argument('--threads', type=int, default=None, help='torch threads')
    parser.add_argument('--log-interval', type=int, default=50)
    parser.add_argument('--reuse', action='store_true',
                        help='evaluate WORK_DIR/<variant>/hf instead of training when it exists')
    parser.add_argument('--jobs', type=int, default=1,
                        help='variants run at once, each in its own process with '
                        'cores / jobs threads (output in WORK_DIR/<variant>.log)')
    parser.add_argument('--results-name', default='results.json', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f'--jobs must be >= 1, got {args.jobs}')
    return args


def run_in_parallel(args, argv) -> dict:
    """One process per variant (``--jobs`` at a time), then their results merged."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor
    argv = list(sys.argv[1:] if argv is None else argv)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    os.makedirs(args.work_dir, exist_ok=True)

    def run(variant):
        cmd = [sys.executable, osp.abspath(__file__), *argv, '--jobs', '1', '--threads',
               str(args.threads or threads), '--variants', variant,
               '--results-name', f'results_{variant}.json']
        log = osp.join(args.work_dir, f'{variant}.log')
        print(f'[region_mllm] {variant}: {" ".join(cmd)} > {log}', flush=True)
        with open(log, 'w') as f:
            code = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT,
                                   env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
        if code:
            raise SystemExit(f'{variant} failed (exit {code}); see {log}')

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(run, args.variants))
    merged = None
    for variant in args.variants:
        with open(osp.join(args.work_dir, f'results_{variant}.json')) as f:
            part = json.load(f)
        if merged is None:
            merged = dict(part, variants={}, table={})
            merged['settings'].update(variants=args.variants, jobs=args.jobs)
        merged['variants'].update(part['variants'])
        merged['table'].update(part['table'])
    return merged


def tower_paths(args, tower):
    config = getattr(args, f'{tower}_config')
    checkpoint = getattr(args, f'{tower}_checkpoint')
    if not osp.isfile(checkpoint):
        raise SystemExit(f'no {tower.upper()} checkpoint at {checkpoint}: train the demo first '
                         f'(python tools/run_demo.py) or pass --{tower}-checkpoint')
    return config, checkpoint


def eval_sets(args):
    """(name, data root, annotation file) of the val split and the shifted sets there are."""
    sets = [('val', args.data_root, 'annotations/val.jsonl')]
    for shift in SHIFTS:
        root = osp.join(args.data_root, 'shifts', shift)
        if osp.isfile(osp.join(root, 'annotations', 'val.jsonl')):
            sets.append((shift, root, 'annotations/val.jsonl'))
        else:
            print(f'[region_mllm] no shifted set {shift} under {root}: skipped')
    return sets


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.jobs > 1 and len(args.variants) > 1:
        results = run_in_parallel(args, argv)
        with open(osp.join(args.work_dir, args.results_name), 'w') as f:
            json.dump(results, f, indent=2)
        print(json.dumps(results['table'], indent=2))
        return results
    import torch

    from cllip_mm.mllm import (
        DEFAULT_LM,
        ConversationDataset,
        ImageLoader,
        InstructionBuilder,
        RegionMLLM,
        SequenceEncoder,
        build_instruction_tokenizer,
        build_region_llava,
        corpus_of,
        evaluate_instructions,
        load_region_records,
        load_vision_source,
        train_region_llava,
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg_options = dict(args.tower_cfg_options)
    os.makedirs(args.work_dir, exist_ok=True)
    lm = json.loads(args.lm) if args.lm else dict(DEFAULT_LM)

    # ---------------------------------------------------------------- data
    t0 = time.time()
    train = load_region_records('annotations/train.jsonl', args.data_root)
    per_image = dict(zip(('referring', 'grounding', 'relation'), args.train_per_image))
    train_inst = InstructionBuilder(per_image, seed=args.seed).build(train)
    evals = []
    for name, root, ann in eval_sets(args):
        records = load_region_records(ann, root)
        if args.max_eval_images:
            records = records[:args.max_eval_images]
        instructions = InstructionBuilder(dict(referring=1, grounding=1, relation=1),
                                          seed=args.seed + 1000).build(records)
        evals.append((name, records, instructions))
    tokenizer = build_instruction_tokenizer(corpus_of(train_inst),
                                            osp.join(args.work_dir, 'tokenizer'))
    print(f'[region_mllm] {len(train)} training images, {len(train_inst)} instructions; '
          f'eval sets {[(n, len(i)) for n, _, i in evals]}; vocabulary {len(tokenizer)}; '
          f'{time.time() - t0:.1f} s', flush=True)

    results = dict(settings=dict(vars(args), lm=lm), variants={})
    for variant in args.variants:
        tower, region_token = VARIANTS[variant]
        work_dir = osp.join(args.work_dir, variant)
        hf_dir = osp.join(work_dir, 'hf')
        entry = dict(tower=tower, region_token=region_token)
        source = load_vision_source(*tower_paths(args, tower), cfg_options=cfg_options or None)
        if args.reuse and osp.isfile(osp.join(hf_dir, 'config.json')):
            mllm = RegionMLLM.from_pretrained(hf_dir)
            model = mllm.model
            entry['reused'] = hf_dir
        else:
            model = build_region_llava(source, tokenizer, lm=lm, region_token=region_token,
                                       train_vision_tower=args.train_vision_tower,
                                       train_region_sampler=args.train_region_sampler,
                                       seed=args.seed)
            encoder = SequenceEncoder(tokenizer, model.num_image_tokens, region_token)
            dataset = ConversationDataset(train, train_inst, encoder,
                                          ImageLoader(source.image_processing['size']),
                                          turns_per_sample=args.turns, seed=args.seed)
            entry['trainable_params'] = sum(p.numel() for p in model.parameters() if p.requires_grad)
            t0, c0 = time.time(), time.process_time()
            model = train_region_llava(model, dataset, work_dir, args.max_iters,
                                       batch_size=args.batch_size, lr=args.lr,
                                       warmup_iters=args.warmup_iters, seed=args.seed,
                                       log_interval=args.log_interval)
            # wall and CPU (all threads) seconds, runner set-up included
            entry['train_s'] = round(time.time() - t0, 1)
            entry['train_cpu_s'] = round(time.process_time() - c0, 1)
            entry['train_s_per_iter'] = round(entry['train_s'] / args.max_iters, 3)
            entry['train_cpu_s_per_iter'] = round(entry['train_cpu_s'] / args.max_iters, 3)
            RegionMLLM(model, tokenizer).save_pretrained(hf_dir)
        entry['sets'] = {}
        for name, records, instructions in evals:
            t0, c0 = time.time(), time.process_time()
            scores = evaluate_instructions(model, tokenizer, records, instructions,
                                           batch_size=args.eval_batch_size,
                                           max_new_tokens=args.max_new_tokens)
            entry['sets'][name] = dict(
                {k: round(v, 4) if isinstance(v, float) else v for k, v in scores.metrics.items()},
                malformed=scores.malformed, eval_s=round(time.time() - t0, 1),
                eval_cpu_s=round(time.process_time() - c0, 1))
            print(f'[region_mllm] {variant} {name}: ' + ', '.join(
                f'{k} {scores.metrics[k]:.3f}' for k in HEADLINE if k in scores.metrics),
                flush=True)
        results['variants'][variant] = entry

    results['table'] = {variant: {name: {k: s.get(k) for k in HEADLINE}
                                  for name, s in entry['sets'].items()}
                        for variant, entry in results['variants'].items()}
    with open(osp.join(args.work_dir, args.results_name), 'w') as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results['table'], indent=2))
    return results


if __name__ == '__main__':
    main()
