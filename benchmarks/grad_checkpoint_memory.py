# Copyright (c) cllip_mm contributors. All rights reserved.
"""Peak CPU memory of a CLOC training step with and without gradient checkpointing.

Each setting runs in its own process (``--child``): build CLOC (``cloc_vit-b16.py`` towers,
``grad_checkpointing`` on both towers or on neither), one ``train_step`` (so AdamW's state
exists), then the peak resident set (``VmHWM`` of ``/proc/self/status``, reset through
``/proc/self/clear_refs``) during a second ``train_step``. glibc keeps freed heap memory
in the process unless big blocks are mmapped, so the children run with
``MALLOC_MMAP_THRESHOLD_=65536``: a freed tensor buffer leaves the resident set and the
peak reflects the live tensors. Reported per setting: ``resident_before_mb`` (weights,
gradients, AdamW state, interpreter), ``forward_backward_peak_mb`` (the peak above that
during forward + backward: activations, what checkpointing saves), ``step_peak_mb`` (the
same for the whole ``train_step``: AdamW's update also allocates temporaries of the size of
the parameters, which can set the peak at small batches) and ``total_peak_mb``. Linux only.

    python benchmarks/grad_checkpoint_memory.py [--arch b16] [--batch 8] [--regions 4]

Prints one JSON object.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))


def status_mb(field: str) -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f'{field} not in /proc/self/status')


def child(args) -> dict:
    import perf_common as pc
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    tok = pc.tmp_tokenizer()
    cfg = pc.model_cfg(tok, args.arch, grad_checkpointing=args.ckpt)
    cfg['image_encoder']['grad_checkpointing'] = args.ckpt
    model = pc.build_model(cfg)
    wrapper = pc.make_optim_wrapper(model)
    batch = pc.make_batch(args.batch, args.img or model.image_encoder.img_size[0], args.regions)
    model.train_step(batch, wrapper)

    def peak_of(fn):
        before = status_mb('VmRSS')
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset VmHWM to the current resident set
        out = fn()
        return before, status_mb('VmHWM'), out

    def forward_backward():
        data = model.data_preprocessor(batch, True)
        loss, _ = model.parse_losses(model.loss(**data))
        loss.backward()
        wrapper.zero_grad()
        return loss

    before, fb_peak, loss = peak_of(forward_backward)
    _, step_peak, _ = peak_of(lambda: model.train_step(batch, wrapper))
    return dict(grad_checkpointing=args.ckpt, resident_before_mb=round(before, 1),
                forward_backward_peak_mb=round(fb_peak - before, 1),
                step_peak_mb=round(step_peak - before, 1), total_peak_mb=round(step_peak, 1),
                loss=round(float(loss), 5))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='b16', choices=['b16', 'tiny'])
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--img', type=int, default=0)
    parser.add_argument('--regions', type=int, default=4)
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--ckpt', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--out')
    return parser.parse_args()


def main():
    args = parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    runs = {}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
    for ckpt in (False, True):
        cmd = [sys.executable, osp.abspath(__file__), '--child', '--arch', args.arch,
               '--batch', str(args.batch), '--img', str(args.img), '--regions',
               str(args.regions), '--threads', str(args.threads)] + (['--ckpt'] if ckpt else [])
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        runs['checkpointing' if ckpt else 'plain'] = json.loads(out.strip().splitlines()[-1])
    plain, ckpt = runs['plain'], runs['checkpointing']
    result = dict(benchmark='grad_checkpoint_memory', arch=args.arch, batch=args.batch,
                  regions=args.regions, runs=runs,
                  forward_backward_peak_cut=round(
                      1 - ckpt['forward_backward_peak_mb'] / plain['forward_backward_peak_mb'], 3),
                  step_peak_cut=round(1 - ckpt['step_peak_mb'] / plain['step_peak_mb'], 3),
                  total_peak_cut=round(1 - ckpt['total_peak_mb'] / plain['total_peak_mb'], 3))
    print(json.dumps(result))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()
