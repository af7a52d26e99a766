# Copyright (c) cllip_mm contributors. All rights reserved.
"""The paper's Prompter in a training step (shared vs naive computation), against the CLIP
step and this project's RoI Prompter, and each Prompter's cost per box.

Part 1 times ``model.train_step`` (data preprocessor, forward, backward, AdamW step) at
ViT-B/16 (``configs/_base_/models/cloc_vit-b16.py``), batch ``--batch`` at 224 px, ``--regions``
boxes per image with distinct phrases, of

- ``clip``: the CLIP baseline (no prompter, no region terms);
- ``paper``: the paper's recipe (:class:`ClocPrompter` with ``impl='shared'``, pooling over
  all tokens; :class:`ClocGroundingHead` and its L2 loss; text filtering at 0.9; lambda);
- ``paper_naive``: the same with ``impl='naive'`` (``nn.TransformerEncoderLayer`` on each
  prompt's N + T token sequence);
- ``ours``: this project's design (``Prompter`` with RoIAlign content, cross-attention,
  ``GroundingHead`` + ``GroundingLoss``) as the B/16 base config has it.

Part 2 (``--per-box``) times the Prompter alone (forward + backward from fixed image tokens)
at 1, 4 and 64 boxes per image for ``paper`` (shared), ``paper_naive`` and ``ours``, and
reports milliseconds per box.

All models share the towers (one copy of the weights); calls run round-robin in one process
(:func:`perf_common.interleaved_times`); ratios are of the medians (and minima).

    python benchmarks/prompter_step.py [--batch 4] [--regions 4] [--repeats 5] \\
        [--per-box 1,4,64] [--threads 0] [--out FILE]

Prints one JSON object.
"""
import argparse
import copy
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import perf_common as pc  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='b16', choices=['b16', 'tiny'])
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--regions', type=int, default=4)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--per-box', default='1,4,64',
                        help="boxes per image for part 2 ('' skips it)")
    parser.add_argument('--per-box-repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--out', help='also write the JSON object to this file')
    return parser.parse_args()


def paper_cfg(cfg: dict, impl: str) -> dict:
    """The paper's recipe on the towers of ``cfg`` (an ``ours`` model config)."""
    cfg = copy.deepcopy(cfg)
    width = cfg['image_encoder']['width']
    embed_dim = cfg['image_encoder']['embed_dim']
    cfg.update(
        prompter=dict(type='ClocPrompter', width=width, embed_dim=embed_dim, heads=1, impl=impl),
        grounding_head=dict(type='ClocGroundingHead', embed_dim=embed_dim),
        grounding_loss=None,
        region_loss=dict(type='RegionTextContrastiveLoss', share_logit_scale=True,
                         text_filter_threshold=0.9),
        region_loss_weighting='image_fraction')
    return cfg


def step_times(args, tok: str) -> dict:
    ours_cfg = pc.model_cfg(tok, args.arch)
    cfgs = dict(clip=pc.model_cfg(tok, args.arch, clip_only=True), paper=paper_cfg(ours_cfg, 'shared'),
                paper_naive=paper_cfg(ours_cfg, 'naive'), ours=ours_cfg)
    models = {name: pc.build_model(cfg) for name, cfg in cfgs.items()}
    clip = models['clip']
    for model in models.values():
        model.image_encoder, model.text_encoder, model.clip_loss = (
            clip.image_encoder, clip.text_encoder, clip.clip_loss)
    models['paper_naive'].prompter.load_state_dict(models['paper'].prompter.state_dict())
    wrappers = {name: pc.make_optim_wrapper(m) for name, m in models.items()}
    img = models['clip'].image_encoder.img_size[0]
    batch = pc.make_batch(args.batch, img, args.regions, seed=1)
    times = pc.interleaved_times(
        {name: (lambda n=name: models[n].train_step(batch, wrappers[n])) for name in models},
        args.repeats)
    out = dict(steps=pc.summary(times),
               **{f'{name}/clip': pc.ratio(times, name, 'clip') for name in models if name != 'clip'})
    # overhead over the CLIP step, the shared form against the naive one
    med = {name: out['steps'][name]['median_s'] for name in models}
    mins = {name: out['steps'][name]['min_s'] for name in models}
    out['paper_overhead/paper_naive_overhead'] = dict(
        median=round((med['paper'] - med['clip']) / (med['paper_naive'] - med['clip']), 3),
        min=round((mins['paper'] - mins['clip']) / (mins['paper_naive'] - mins['clip']), 3))
    return out, models


def per_box_times(args, models) -> dict:
    """Prompter-only forward + backward from fixed image tokens, per box."""
    clip = models['clip']
    img = clip.image_encoder.img_size[0]
    with torch.no_grad():
        vit = clip.image_encoder(torch.randn(args.batch, 3, img, img))
    result = {}
    for boxes_per_image in [int(v) for v in args.per_box.split(',') if v]:
        gen = torch.Generator().manual_seed(boxes_per_image)
        xy = torch.rand(args.batch, boxes_per_image, 2, generator=gen) * 0.7
        boxes = torch.cat([xy, xy + 0.1 + 0.2 * torch.rand(args.batch, boxes_per_image, 2,
                                                             generator=gen)], -1)

        def run(name, vit=vit, boxes=boxes):
            prompter = models[name].prompter
            tokens = vit.tokens.detach().requires_grad_()
            patches = vit.patch_tokens.detach().requires_grad_()
            v = vit._replace(tokens=tokens, patch_tokens=patches)
            out = prompter.embed_boxes(prompter.context_from_vit(v), boxes)
            out.sum().backward()

        names = ('paper', 'paper_naive', 'ours')
        times = pc.interleaved_times({n: (lambda n=n: run(n)) for n in names},
                                     args.per_box_repeats)
        total = args.batch * boxes_per_image
        result[str(boxes_per_image)] = dict(
            times=pc.summary(times),
            ms_per_box={n: round(1000 * min(times[n]) / total, 3) for n in names})
    return result


def main():
    args = parse_args()
    env = pc.env_info(args.threads)
    tok = pc.tmp_tokenizer()
    steps, models = step_times(args, tok)
    result = dict(benchmark='prompter_step', arch=args.arch, batch=args.batch,
                  regions=args.regions, **env, **steps)
    if args.per_box:
        result['per_box'] = per_box_times(args, models)
    pc.emit(result, args.out)


if __name__ == '__main__':
    main()
