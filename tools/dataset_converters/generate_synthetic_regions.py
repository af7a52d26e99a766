# Copyright (c) cllip_mm contributors. All rights reserved.
"""Generate the synthetic region-text demo dataset and its tokenizers.

Example::

    python tools/dataset_converters/generate_synthetic_regions.py \
        --out data/cloc_demo --num-train 4000 --num-val 500 --seed 0 \
        --min-objects 2 --max-objects 6
"""
import argparse
import os.path as osp
import sys
import time

try:
    import cllip_mm  # noqa: F401
except ImportError:  # run from a source checkout without `pip install -e .`
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from cllip_mm.datasets.synthetic import generate_synthetic_regions  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate a synthetic region-text dataset (JSON Lines + images) '
        'with a word-level and a T5-style (SentencePiece) tokenizer for it')
    parser.add_argument('--out', default='data/cloc_demo', help='output directory')
    parser.add_argument('--num-train', type=int, default=4000)
    parser.add_argument('--num-val', type=int, default=500)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--min-objects', type=int, default=2)
    parser.add_argument('--max-objects', type=int, default=6)
    parser.add_argument('--min-size', type=int, default=112, help='min image side (px)')
    parser.add_argument('--max-size', type=int, default=160, help='max image side (px)')
    parser.add_argument('--img-format', choices=('jpg', 'png'), default='jpg')
    parser.add_argument('--no-tokenizer', action='store_true',
                        help='do not build <out>/tokenizer/tokenizer.json and '
                        '<out>/tokenizer_t5/')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    summary = generate_synthetic_regions(
        args.out, num_train=args.num_train, num_val=args.num_val, seed=args.seed,
        min_objects=args.min_objects, max_objects=args.max_objects,
        min_size=args.min_size, max_size=args.max_size, img_format=args.img_format,
        build_tokenizer=not args.no_tokenizer)
    print(f'Wrote {summary["num_images"]} images with {summary["num_regions"]} regions '
          f'to {args.out} in {time.perf_counter() - start:.1f} s '
          f'(annotations: {list(summary["ann_files"].values())}, '
          f'tokenizers: {summary["tokenizer"]}, {summary["tokenizer_t5"]})')
    return summary


if __name__ == '__main__':
    main()
