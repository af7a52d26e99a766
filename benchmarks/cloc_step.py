# Copyright (c) cllip_mm contributors. All rights reserved.
"""CLOC's training step against the CLIP baseline's, and its cost per region.

Times ``model.train_step`` (data preprocessor, forward, backward, AdamW step) of

- ``clip``: the CLIP baseline (``cloc_vit-b16.py`` without prompter, grounding head and
  region losses) on the batch below;
- ``cloc``: CLOC on the same batch, ``--regions`` boxes per image with distinct phrases;
- ``cloc_padded`` (with ``--padded``): the same CLOC with ``text_encoder.trim_padding=False``,
  the text tower run at the tokenizer's padded lengths (77 for captions, 32 for phrases);
- ``cloc_r1`` / ``cloc_rN`` (with ``--region-scaling N``): CLOC with 1 and N regions per
  image, phrases drawn from the phrase distribution (``--scaling-distinct`` makes them all
  distinct texts); ``cloc_rN_pK`` (with ``--scaling-phrases-per-image K``): N boxes per
  image over K phrases per image, as VESL labels come (several boxes per caption phrase).

CLIP shares CLOC's towers (one copy of the weights); all steps run round-robin in one
process (:func:`perf_common.interleaved_times`); ratios are of the medians. ``--profile``
adds the forward time of each part of the CLOC step (module hooks).

    python benchmarks/cloc_step.py [--arch b16] [--batch 4] [--img 224] [--regions 4] \\
        [--repeats 5] [--padded] [--region-scaling 64] [--scaling-phrases-per-image 8] \\
        [--profile] [--out FILE]

Prints one JSON object.
"""
import argparse
import os.path as osp
import sys
import time
from collections import defaultdict

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import perf_common as pc  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='b16', choices=['b16', 'tiny'])
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--img', type=int, default=224)
    parser.add_argument('--regions', type=int, default=4)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--padded', action='store_true')
    parser.add_argument('--region-scaling', type=int, default=0)
    parser.add_argument('--scaling-distinct', action='store_true')
    parser.add_argument('--scaling-phrases-per-image', type=int, default=0)
    parser.add_argument('--skip-clip', action='store_true')
    parser.add_argument('--profile', action='store_true')
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--out', help='also write the JSON object to this file')
    return parser.parse_args()


def share_towers(dst, src):
    """Make ``dst`` use ``src``'s towers and CLIP loss (one copy of those weights)."""
    dst.image_encoder, dst.text_encoder, dst.clip_loss = (src.image_encoder, src.text_encoder,
                                                          src.clip_loss)


def forward_profile(model, batch, steps: int = 2) -> dict:
    """Forward seconds per part of one CLOC step (mean over ``steps``), from module hooks;
    the text tower's two calls (captions, then phrases) are told apart."""
    parts = dict(image_encoder=model.image_encoder, text_encoder=model.text_encoder,
                 prompter=model.prompter, grounding_head=model.grounding_head,
                 clip_loss=model.clip_loss, region_loss=model.region_loss,
                 grounding_loss=model.grounding_loss)
    totals, starts, calls = defaultdict(float), {}, defaultdict(int)

    def pre(name):
        def hook(module, args):
            starts[name] = time.perf_counter()
        return hook

    def post(name):
        def hook(module, args, out):
            key = name
            if name == 'text_encoder':
                key = ('text_encoder.captions', 'text_encoder.phrases')[calls[name] % 2]
            calls[name] += 1
            totals[key] += time.perf_counter() - starts[name]
        return hook

    handles = []
    for name, module in parts.items():
        if module is not None:
            handles += [module.register_forward_pre_hook(pre(name)),
                        module.register_forward_hook(post(name))]
    wall = 0.0
    for _ in range(steps):
        start = time.perf_counter()
        with torch.no_grad():
            data = model.data_preprocessor(batch, True)
            model.loss(**data)
        wall += time.perf_counter() - start
    for handle in handles:
        handle.remove()
    out = {k: round(v / steps, 4) for k, v in sorted(totals.items())}
    out['forward_total'] = round(wall / steps, 4)
    out['other'] = round(out['forward_total'] - sum(totals.values()) / steps, 4)
    return out


def main():
    args = parse_args()
    env = pc.env_info(args.threads)
    tok = pc.tmp_tokenizer()
    cloc = pc.build_model(pc.model_cfg(tok, args.arch))
    models = {'cloc': cloc}
    if not args.skip_clip:
        models['clip'] = pc.build_model(pc.model_cfg(tok, args.arch, clip_only=True))
        share_towers(models['clip'], cloc)
    wrappers = {name: pc.make_optim_wrapper(m) for name, m in models.items()}
    batch = pc.make_batch(args.batch, args.img, args.regions, seed=1, distinct=True)

    def step(name, data, trim=True):
        def run():
            # ``cloc_padded`` is the same model with the text tower at padded lengths.
            cloc.text_encoder.trim_padding = trim
            try:
                return models[name].train_step(data, wrappers[name])
            finally:
                cloc.text_encoder.trim_padding = True
        return run

    fns = {name: step(name, batch) for name in models}
    if args.padded:
        fns['cloc_padded'] = step('cloc', batch, trim=False)
    scaling_batches = {}
    if args.region_scaling:
        for r in (1, args.region_scaling):
            data = pc.make_batch(args.batch, args.img, r, seed=2, distinct=args.scaling_distinct)
            fns[f'cloc_r{r}'] = step('cloc', data)
            scaling_batches[f'cloc_r{r}'] = data
        k = args.scaling_phrases_per_image
        if k:
            r = args.region_scaling
            data = pc.make_batch(args.batch, args.img, r, seed=2, phrases_per_image=k)
            fns[f'cloc_r{r}_p{k}'] = step('cloc', data)
            scaling_batches[f'cloc_r{r}_p{k}'] = data
    times = pc.interleaved_times(fns, args.repeats)
    result = dict(benchmark='cloc_step', arch=args.arch, batch=args.batch, img=args.img,
                  regions=args.regions, caption_lengths=pc.CAPTION_LENGTHS,
                  phrase_lengths=pc.PHRASE_LENGTHS, **env, times=pc.summary(times))
    ratios = {}
    if 'clip' in times:
        ratios['cloc/clip'] = pc.ratio(times, 'cloc', 'clip')
        if args.padded:
            ratios['cloc_padded/clip'] = pc.ratio(times, 'cloc_padded', 'clip')
    if args.padded:
        ratios['cloc/cloc_padded'] = pc.ratio(times, 'cloc', 'cloc_padded')
    if args.region_scaling:
        r = args.region_scaling
        ratios[f'r{r}/r1'] = pc.ratio(times, f'cloc_r{r}', 'cloc_r1')
        k = args.scaling_phrases_per_image
        if k:
            ratios[f'r{r}_p{k}/r1'] = pc.ratio(times, f'cloc_r{r}_p{k}', 'cloc_r1')
        result['scaling_distinct_phrases'] = args.scaling_distinct
        result['scaling_distinct_phrases_per_batch'] = {
            name: len({p for s in data['data_samples'] for p in s.gt_regions.phrases})
            for name, data in scaling_batches.items()}
    result['ratios'] = ratios
    token_lengths = {}
    enc = cloc.text_encoder
    for kind, texts, ctx in (
            ('captions', [s.caption for s in batch['data_samples']], None),
            ('phrases', [p for s in batch['data_samples'] for p in s.gt_regions.phrases],
             cloc.phrase_context_length)):
        ids = cloc.tokenizer(texts, ctx)
        index = enc.pool_index(ids)
        token_lengths[kind] = dict(n=len(texts), padded_to=ids.shape[1],
                                   run_at=int(index.max()) + 1,
                                   mean_tokens=round(float(index.float().mean()) + 1, 2))
    result['text_tokens'] = token_lengths
    if args.profile:
        result['forward_profile_cloc'] = forward_profile(cloc, batch)
    pc.emit(result, args.out)


if __name__ == '__main__':
    main()
