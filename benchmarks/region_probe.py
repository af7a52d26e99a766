# Copyright (c) cllip_mm contributors. All rights reserved.
"""What a box's RoI-pooled tokens carry, and how fast the region branch learns.

1. Linear probes (32-way phrase, 8-way colour) on RoIAlign-pooled features of an
   *untrained* encoder, for each token map: pixels, the stem's patch embeddings,
   after ``ln_pre``, the blocks' output, after ``ln_post``. Every map is pooled through
   ``cllip_mm.models.layers.roi_align`` (contiguous inputs); the control rows
   ``... (raw mmcv on a transposed view)`` pool the same maps with ``mmcv.ops.roi_align``
   on the non-contiguous view, as this script (and the Prompter) did before the fix.
2. Short loops (CLIP + region + grounding loss on a fixed set of batches) for Prompter
   variants, reporting ``loss_region``, train-batch region accuracy, grounding
   accuracy and the mean phrase cosine.

    python benchmarks/region_probe.py [--steps 150] [--variants final patch_embed] [--roi-pool mean]

Prints one JSON document. Needs the demo set (``python tools/run_demo.py`` writes it).
"""
import argparse
import copy
import json
import time

import torch
import torch.nn.functional as F
from mmcv.ops import roi_align as mmcv_roi_align
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from cllip_mm.datasets.synthetic import all_phrases
from cllip_mm.models.layers import boxes_to_rois, roi_align
from cllip_mm.models.losses import phrase_keys
from cllip_mm.models.multimodal.cloc import pack_regions
from cllip_mm.registry import DATASETS, MODELS
from cllip_mm.utils import register_all_modules

CONFIG = 'configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py'
VARIANTS = {
    'final': dict(roi_sources=('final', ), context_sources=('final', )),
    'patch_embed': dict(roi_sources=('patch_embed', ), context_sources=('final', 'patch_embed')),
}


def linear_probe(x, y, num_classes, train_frac=0.75, iters=300):
    n = int(len(y) * train_frac)
    x = (x - x[:n].mean(0)) / (x[:n].std(0) + 1e-6)
    w = torch.zeros(x.shape[1], num_classes, requires_grad=True)
    opt = torch.optim.Adam([w], 1e-2)
    for _ in range(iters):
        loss = F.cross_entropy(x[:n] @ w, y[:n]) + 1e-3 * w.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return ((x[n:] @ w).argmax(1) == y[n:]).float().mean().item()


def probes(model, batches):
    """Probe accuracies of RoIAlign-pooled features of each token map (frozen model)."""
    names = all_phrases()
    vit = model.image_encoder
    feats, labels = {}, []
    with torch.no_grad():
        for batch in batches:
            data = model.data_preprocessor(batch, False)
            x, samples = data['inputs'], data['data_samples']
            regions = pack_regions(samples, x.shape[-2:], x.device)
            tokens, stem = vit.forward_tokens(x)
            grid = stem.shape[-2:]
            to_map = lambda t: t.transpose(1, 2).unflatten(2, grid)  # noqa: E731
            maps = {
                'pixels': x,
                'stem patch embeddings': stem,
                'after ln_pre': to_map(vit.ln_pre(stem.flatten(2).transpose(1, 2))),
                'block outputs': to_map(tokens[:, 1:]),
                'after ln_post': to_map(vit.ln_post(tokens[:, 1:])),
            }
            for name, fmap in maps.items():
                rois = boxes_to_rois(regions.boxes, fmap.shape[-2:])
                pooled = roi_align(fmap, rois, 4, 1.0, 2)
                feats.setdefault(name, []).append(pooled.mean((2, 3))[regions.valid.flatten()])
            for name in ('after ln_pre', 'block outputs', 'after ln_post'):
                fmap = maps[name]  # a transposed view, as built above
                raw = mmcv_roi_align(fmap, boxes_to_rois(regions.boxes, grid), 4, 1.0, 2, 'avg', True)
                feats.setdefault(f'{name} (raw mmcv on a transposed view)', []).append(
                    raw.mean((2, 3))[regions.valid.flatten()])
            labels += [names.index(p) for p in regions.phrases]
    y = torch.tensor(labels)
    return {name: dict(phrase_acc=round(linear_probe(torch.cat(f), y, 32), 3),
                       colour_acc=round(linear_probe(torch.cat(f), y // 4, 8), 3))
            for name, f in feats.items()}


def short_loop(cfg, batches, variant, steps, roi_pool=None):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.prompter.update(VARIANTS[variant])
    if roi_pool:
        model_cfg.prompter.roi_pool = roi_pool
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=0.05)
    log, start = [], time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group['lr'] = 1e-3 * min(1.0, (step + 1) / 30)
        data = model.data_preprocessor(batches[step % len(batches)], True)
        x, samples = data['inputs'], data['data_samples']
        vit = model.image_encoder(x)
        regions = pack_regions(samples, x.shape[-2:], x.device)
        distinct = list(dict.fromkeys(regions.phrases))
        index = torch.tensor([distinct.index(p) for p in regions.phrases])
        phrases = model.embed_phrases(distinct)
        embeds = F.normalize(model.prompter(vit.patch_tokens, regions.boxes, vit.patch_embeds), dim=-1)
        embeds = embeds[regions.valid]
        loss_region = model.region_loss(embeds, phrases, index, phrase_keys(distinct),
                                        regions.valid.nonzero()[:, 0])
        prompts = phrases.new_zeros(*regions.valid.shape, phrases.shape[-1])
        prompts[regions.valid] = phrases[index]
        boxes = model.grounding_head(prompts, vit.patch_tokens, model.prompter, vit.patch_embeds)[regions.valid]
        loss_ground = model.grounding_loss(boxes, regions.boxes[regions.valid])
        loss_clip = model.clip_loss(F.normalize(vit.image_embed, dim=-1),
                                    model.embed_texts([s.caption for s in samples]))
        opt.zero_grad()
        (loss_clip + loss_region + loss_ground).backward()
        opt.step()
        if step % 25 == 0 or step == steps - 1:
            with torch.no_grad():
                iou = bbox_overlaps(bbox_cxcywh_to_xyxy(boxes), regions.boxes[regions.valid], is_aligned=True)
                cos = phrases @ phrases.t()
                log.append(dict(
                    step=step, loss_region=round(loss_region.item(), 3), loss_clip=round(loss_clip.item(), 3),
                    region_acc=round(((embeds @ phrases.t()).argmax(1) == index).float().mean().item(), 3),
                    ground_acc=round((iou >= 0.5).float().mean().item(), 3),
                    phrase_cos=round(cos[~torch.eye(len(distinct), dtype=torch.bool)].mean().item(), 3),
                    seconds=round(time.time() - start)))
    return log


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=150)
    parser.add_argument('--num-batches', type=int, default=12)
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument('--roi-pool', choices=('mean', 'flatten'),
                        help="the Prompter's roi_pool in the short loops (default: the config's)")
    args = parser.parse_args()
    register_all_modules()
    cfg = Config.fromfile(CONFIG)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    torch.manual_seed(0)
    batches = [pseudo_collate([dataset[i] for i in torch.randint(0, len(dataset), (64, )).tolist()])
               for _ in range(args.num_batches)]
    torch.manual_seed(0)
    result = dict(probes_at_init=probes(MODELS.build(cfg.model).eval(), batches[:6]))
    result['short_loops'] = {v: short_loop(cfg, batches, v, args.steps, args.roi_pool)
                             for v in args.variants}
    result['roi_pool'] = args.roi_pool or cfg.model.prompter.get('roi_pool', 'mean')
    print(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
