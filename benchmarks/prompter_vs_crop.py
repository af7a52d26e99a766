# Copyright (c) cllip_mm contributors. All rights reserved.
"""Region embeddings of R boxes per image: the Prompter against crop-and-encode.

``CLOC.embed_regions(images, boxes, mode)`` under ``torch.no_grad()`` in eval mode, with
the ``cloc_vit-b16.py`` model at 224 px: ``'prompter'`` runs the image encoder once per
image and the Prompter on the R boxes; ``'crop'`` cuts every box out of the input
(RoIAlign to 224 x 224) and runs the image encoder on each crop. The crop path costs R
encoder passes against one, so R is the limit of the speed-up; the target is >= 0.9 R.
``--parts`` also times the Prompter alone on the encoder's output.

    python benchmarks/prompter_vs_crop.py [--boxes 16 64] [--images 1] [--repeats 3]

Prints one JSON object.
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import perf_common as pc  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='b16', choices=['b16', 'tiny'])
    parser.add_argument('--boxes', type=int, nargs='+', default=[16, 64])
    parser.add_argument('--images', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--out')
    return parser.parse_args()


def main():
    args = parse_args()
    env = pc.env_info(args.threads)
    model = pc.build_model(pc.model_cfg(pc.tmp_tokenizer(), args.arch)).eval()
    size = model.image_encoder.img_size[0]
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(args.images, 3, size, size, generator=gen)
    result = dict(benchmark='prompter_vs_crop', arch=args.arch, images=args.images, img=size,
                  **env, boxes={})
    for r in args.boxes:
        xy = torch.rand(args.images, r, 2, generator=gen) * 0.7
        boxes = torch.cat([xy, xy + 0.1 + torch.rand(args.images, r, 2, generator=gen) * 0.2],
                          -1).clamp(max=1)
        with torch.no_grad():
            vit = model.image_encoder(images)

            def prompter_only():
                return model.prompter(vit.patch_tokens, boxes, vit.patch_embeds)

            fns = {
                'prompter': lambda: model.embed_regions(images, boxes, 'prompter'),
                'crop': lambda: model.embed_regions(images, boxes, 'crop'),
                'encoder_only': lambda: model.image_encoder(images),
                'prompter_only': prompter_only,
            }
            times = pc.interleaved_times(fns, args.repeats)
        speedup = pc.ratio(times, 'crop', 'prompter')
        result['boxes'][r] = dict(
            times=pc.summary(times), speedup=speedup,
            speedup_per_box=round(speedup['median'] / r, 3),
            prompter_share=pc.ratio(times, 'prompter_only', 'prompter')['median'])
    pc.emit(result, args.out)


if __name__ == '__main__':
    main()
