# Copyright (c) cllip_mm contributors. All rights reserved.
"""What a trained image encoder's tokens say about a box, read out three ways.

For a checkpoint, the ViT's output tokens (before ``ln_post``: what the paper's Prompter and
its RoI control read) of ``--num-train`` training images and the val split are read out at
the ground-truth boxes as

- ``box_mean``: the mean of the patch tokens whose centre lies in the box (the Prompter's
  ``pool='box'`` weights, no layer);
- ``roi_mean``: the mean of a k x k RoIAlign grid (the paper's RoI-alignment control);
- ``roi_flatten``: the same grid, flattened (the layout inside the box kept);

and a linear probe (softmax regression, full batch, L-BFGS) per read-out and target
(the 32-way phrase, its 8-way colour, its 4-way shape) is fitted on the training boxes and
scored on the val boxes. A read-out whose probe cannot tell the shape, while another can,
loses the shape; all three at chance say the tokens do not carry it.

    python benchmarks/region_readout_probe.py CONFIG CHECKPOINT [--num-train 1500] \
        [--cfg-options ...]

Prints one JSON object.
"""
import argparse
import json

import torch
import torch.nn.functional as F
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.runner import load_checkpoint

from cllip_mm.models.layers import boxes_to_rois, roi_align
from cllip_mm.models.multimodal.cloc import pack_regions
from cllip_mm.models.prompters import ClocPrompter
from cllip_mm.registry import DATASETS, MODELS
from cllip_mm.utils import register_all_modules


@torch.no_grad()
def read_out(model, dataset, num: int, grid: int, batch_size: int = 32):
    """Read-outs {name: [R, F]} and phrases [R] of the GT regions of ``num`` images."""
    feats, phrases = {'box_mean': [], 'roi_mean': [], 'roi_flatten': []}, []
    pool = ClocPrompter(8, 8, pool='box')  # only its box_pool_weights
    for start in range(0, num, batch_size):
        batch = pseudo_collate([dataset[i] for i in range(start, min(start + batch_size, num))])
        data = model.data_preprocessor(batch, False)
        vit = model.image_encoder(data['inputs'])
        regions = pack_regions(data['data_samples'], data['inputs'].shape[-2:],
                               data['inputs'].device)
        tokens = vit.tokens
        h, w = vit.patch_tokens.shape[-2:]
        images, slots = regions.valid.nonzero(as_tuple=True)
        boxes = regions.boxes[images, slots]  # [R, 4] normalised xyxy
        weights = pool.box_pool_weights(boxes, (h, w), tokens.size(1))[:, 0]  # one cell
        feats['box_mean'].append(torch.einsum('rn,rnc->rc', weights, tokens[images])
                                 / weights.sum(1, keepdim=True))
        maps = tokens[:, -h * w:].transpose(1, 2).unflatten(2, (h, w))  # [B, C, h, w]
        cells = roi_align(maps, boxes_to_rois(regions.boxes, (h, w)), grid, 1.0, 2)
        cells = cells.unflatten(0, regions.valid.shape)[images, slots]  # [R, C, k, k]
        feats['roi_mean'].append(cells.mean((2, 3)))
        feats['roi_flatten'].append(cells.flatten(1))
        phrases += [p for s in batch['data_samples'] for p in s.gt_regions.phrases]
    return {k: torch.cat(v) for k, v in feats.items()}, phrases


def probe(train_x, train_y, val_x, val_y, num_classes: int, steps: int = 200) -> float:
    """Val accuracy of a softmax regression fitted on standardised train features."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, val_x = (train_x - mean) / std, (val_x - mean) / std
    torch.manual_seed(0)
    linear = torch.nn.Linear(train_x.size(1), num_classes)
    opt = torch.optim.LBFGS(linear.parameters(), max_iter=steps, line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(linear(train_x), train_y) + 1e-3 * linear.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float((linear(val_x).argmax(1) == val_y).float().mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--num-train', type=int, default=1500)
    parser.add_argument('--num-val', type=int, default=500)
    parser.add_argument('--grid', type=int, default=4, help='k of the k x k RoIAlign grid')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()

    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = MODELS.build(cfg.model).eval()
    load_checkpoint(model, args.checkpoint, map_location='cpu', logger='silent')
    val_cfg = cfg.test_dataloader.dataset
    train_cfg = dict(val_cfg, ann_file=cfg.train_dataloader.dataset.ann_file)
    sets = {}
    for name, ds_cfg, num in (('train', train_cfg, args.num_train), ('val', val_cfg, args.num_val)):
        dataset = DATASETS.build(ds_cfg)
        sets[name] = read_out(model, dataset, min(num, len(dataset)), args.grid)
    targets = {
        'phrase': lambda p: p,
        'colour': lambda p: p.split()[0],
        'shape': lambda p: p.split()[-1],
    }
    result = dict(checkpoint=args.checkpoint, train_regions=len(sets['train'][1]),
                  val_regions=len(sets['val'][1]), grid=args.grid, accuracy={})
    for target, key in targets.items():
        names = sorted({key(p) for p in sets['train'][1] + sets['val'][1]})
        label = {n: i for i, n in enumerate(names)}
        ys = {s: torch.tensor([label[key(p)] for p in sets[s][1]]) for s in sets}
        result['accuracy'][target] = {
            'chance': round(1 / len(names), 3),
            **{readout: round(probe(sets['train'][0][readout], ys['train'],
                                    sets['val'][0][readout], ys['val'], len(names)), 3)
               for readout in sets['train'][0]}}
    print(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
