# Copyright (c) cllip_mm contributors. All rights reserved.
"""VESL throughput with the tiny random models on this machine, and its split
between stages, for several batch sizes side by side in one process.

    python benchmarks/vesl_throughput.py [--num-images 64] [--batch-sizes 1 8]
        [--image-size 64 160] [--device cpu] [--dtype float32]

Builds the tiny BLIP / NLTK tagger / OWLv2 of ``cllip_mm.testing.vesl`` and random
JPEGs in a temporary directory, runs ``VESLRunner`` once per batch size (after one
warm-up shard) and prints one JSON object: images/s and seconds / share per stage.
The tiny models make the numbers a measure of the pipeline's own overhead (decode,
processors, batching, filters, writing), not of real-model speed.
"""
import argparse
import json
import logging
import os.path as osp
import platform
import tempfile

import torch


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-images', type=int, default=64)
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 8])
    parser.add_argument('--image-size', type=int, nargs=2, default=[64, 160],
                        metavar=('MIN', 'MAX'))
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtype', default='float32')
    return parser.parse_args()


def main():
    args = parse_args()
    from mmengine.logging import MMLogger

    from cllip_mm.testing import make_tiny_vesl_models, make_vesl_images, tiny_vesl_config
    from cllip_mm.utils import register_all_modules
    from cllip_mm.vesl import VESLRunner
    register_all_modules()
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # stdout: the JSON only
    result = dict(num_images=args.num_images, device=args.device, dtype=args.dtype,
                  torch_threads=torch.get_num_threads(), machine=platform.processor() or
                  platform.machine(), runs={})
    with tempfile.TemporaryDirectory() as tmp:
        models = make_tiny_vesl_models(osp.join(tmp, 'models'))
        images = osp.join(tmp, 'images')
        make_vesl_images(images, args.num_images, seed=0, min_size=args.image_size[0],
                         max_size=args.image_size[1])
        warm = osp.join(tmp, 'warm')
        make_vesl_images(warm, 4, seed=1)
        for bs in args.batch_sizes:
            cfg = tiny_vesl_config(models, batch_size=bs, shard_size=max(bs, 16),
                                   device=args.device, dtype=args.dtype)
            VESLRunner(cfg, warm, osp.join(tmp, f'warm-{bs}'), progress=False).run()
            report = VESLRunner(cfg, images, osp.join(tmp, f'out-{bs}'), progress=False).run()
            run = report['this_run']
            result['runs'][f'batch_size={bs}'] = dict(
                images_per_s=run['images_per_s'], wall_s=run['wall_s'],
                stage_s=run['time_s'], stage_share=run['time_share'],
                regions_per_image=report['regions_per_image'],
                phrases_per_image=report['phrases_per_image'])
    runs = list(result['runs'].values())
    if len(runs) > 1:
        result['speedup_last_vs_first_batch_size'] = round(
            runs[-1]['images_per_s'] / runs[0]['images_per_s'], 3)
    print(json.dumps(result, indent=2))


if __name__ == '__main__':
    main()
