# Copyright (c) cllip_mm contributors. All rights reserved.
"""How far apart a checkpoint's text encoder puts the demo's phrases: the cosine of the
text embeddings of the 32 class names ("<colour> <shape>"), for pairs that share the colour
and pairs that share the shape, and the fraction above the paper's filter threshold.

With the paper's negative filtering (sec. 3.4), a pair above the threshold leaves both
denominators of the region loss: if the phrases sharing a colour sit above it, the region
loss never contrasts a red circle with a red square.

    python benchmarks/phrase_similarity.py CONFIG CHECKPOINT [CHECKPOINT ...] \
        [--classes data/cloc_demo/classes.txt] [--threshold 0.9] [--cfg-options ...]

Prints one JSON object.
"""
import argparse
import json

import torch
import torch.nn.functional as F
from mmengine.config import Config, DictAction
from mmengine.runner import load_checkpoint

from cllip_mm.registry import MODELS
from cllip_mm.utils import register_all_modules


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoints', nargs='+')
    parser.add_argument('--classes', default='data/cloc_demo/classes.txt')
    parser.add_argument('--threshold', type=float, default=0.9)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()

    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = MODELS.build(cfg.model).eval()
    with open(args.classes) as f:
        names = [line.strip() for line in f if line.strip()]
    colour = [n.split()[0] for n in names]
    shape = [n.split()[-1] for n in names]
    off = ~torch.eye(len(names), dtype=torch.bool)
    groups = {
        'same_colour': torch.tensor([[a == b for b in colour] for a in colour]) & off,
        'same_shape': torch.tensor([[a == b for b in shape] for a in shape]) & off,
        'all_pairs': off,
    }
    result = dict(config=args.config, threshold=args.threshold, classes=len(names), checkpoints={})
    for checkpoint in args.checkpoints:
        load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
        with torch.no_grad():
            embeds = F.normalize(model.embed_texts(names), dim=-1)
        cos = embeds @ embeds.t()
        result['checkpoints'][checkpoint] = {
            name: dict(mean_cos=round(float(cos[mask].mean()), 3),
                       above_threshold=round(float((cos[mask] > args.threshold).float().mean()), 3))
            for name, mask in groups.items()}
    print(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
