# Copyright (c) cllip_mm contributors. All rights reserved.
"""Loader throughput (images/s): RegionTextShardStream on tar shards vs RegionTextDataset
on the JSON Lines file, same images, same training pipeline, same DataLoader settings.

The shards are written from the JSON Lines file by
``tools/dataset_converters/region_text2shards.py`` (into a temporary folder). Both
loaders are timed over ``--batches`` batches after ``--warmup`` batches, alternating
``--rounds`` times in one process (which one goes first alternates too). Each round gives
images per wall second and, with ``--workers 0`` (loading in this process), images per
CPU second of the process, the figure that other jobs on a shared machine disturb least.

    python benchmarks/loader_throughput.py [--data-root data/cloc_demo] [--batches 30] \\
        [--workers 1] [--rounds 5] [--out FILE] [--stages]

Pinned to one core (``taskset -c 1``), the wall-clock figures are meaningful as well
while no other process runs on that core: per round, wall and CPU throughput then
agree (``cpu_affinity`` in the result names the cores the process could run on).

``--stages`` adds the CPU time per sample of each loading stage (:func:`stage_us`).
Prints one JSON object (and with ``--out`` writes it there). Writes the demo set to
``--data-root`` if missing.
"""
import argparse
import copy
import importlib.util
import os
import os.path as osp
import statistics
import sys
import tempfile
import time

from mmengine.config import Config
from mmengine.dataset import InfiniteSampler, pseudo_collate
from torch.utils.data import DataLoader

from cllip_mm.registry import DATASETS
from cllip_mm.utils import register_all_modules

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import perf_common as pc  # noqa: E402

CONFIG = 'configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py'
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default='data/cloc_demo')
    parser.add_argument('--batches', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--workers', type=int, default=1)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--samples-per-shard', type=int, default=500)
    parser.add_argument('--out', help='also write the JSON object to this file')
    parser.add_argument('--stages', action='store_true',
                        help='also time the loading stages per sample (stage_us)')
    return parser.parse_args()


def images_per_s(it, batches: int, warmup: int) -> tuple:
    """(images per wall second, images per CPU second of this process)."""
    for _ in range(warmup):
        next(it)
    start, cpu, n = time.perf_counter(), time.process_time(), 0
    for _ in range(batches):
        n += len(next(it)['inputs'])
    return (n / (time.perf_counter() - start), n / (time.process_time() - cpu))


def stage_us(jsonl, stream, shard: str, repeats: int = 5) -> dict:
    """CPU microseconds per sample of each loading stage (before the shared transforms),
    the minimum of ``repeats`` passes over the samples of one shard, stage by stage.

    Both: the image decoding (the same images). Stream: reading the tar members,
    decoding the JSON member, the record checks, and ``_decode`` (JSON + checks + image
    + size check) as a whole. JSON Lines: the data info (unpickled per sample by
    MMEngine's ``BaseDataset``), reading the image file, and ``LoadImageFromFileChecked``
    (file + image + size check) as a whole. Stage by stage the caches stay warm, so the
    parts add up to less than the whole, and the wholes to less than a sample costs in
    the loader.
    """
    import json

    import mmcv
    from mmengine.fileio import get

    from cllip_mm.datasets.odvg import is_odvg_record
    from cllip_mm.datasets.tar_shards import iter_tar_samples

    samples = [(shard, key, files) for key, files, _, _ in iter_tar_samples(shard)]
    n = len(samples)
    raws = [json.loads(files['json']) for _, _, files in samples]
    infos = [jsonl.get_data_info(i) for i in range(n)]
    load = jsonl.pipeline.transforms[0]

    def parse():
        for (shard, key, files), raw in zip(samples, raws):
            raw.setdefault('image', f'{key}.jpg')
            stream.parser.parse(raw, shard, key, convert=is_odvg_record(raw))

    stages = dict(
        shards_tar_read=lambda: list(iter_tar_samples(shard)),
        shards_json_decode=lambda: [json.loads(f['json']) for _, _, f in samples],
        shards_record_checks=parse,
        image_decode=lambda: [mmcv.imfrombytes(f['jpg'], flag='color', channel_order='bgr')
                              for _, _, f in samples],  # the same images in both
        shards_decode_total=lambda: [stream._decode(*s) for s in samples],
        jsonl_data_info=lambda: [jsonl.get_data_info(i) for i in range(n)],
        jsonl_file_read=lambda: [get(info['img_path']) for info in infos],
        jsonl_load_step_total=lambda: [load(dict(info)) for info in infos])
    best = {name: float('inf') for name in stages}
    for _ in range(repeats):
        for name, fn in stages.items():
            start = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - start)
    result = {name: round(t / n * 1e6, 1) for name, t in best.items()}
    result['samples'] = n
    return result


def main():
    args = parse_args()
    register_all_modules()
    if not osp.exists(osp.join(args.data_root, 'annotations', 'train.jsonl')):
        from cllip_mm.datasets.synthetic import generate_synthetic_regions
        generate_synthetic_regions(args.data_root, num_train=4000, num_val=500, seed=0)
    cfg = Config.fromfile(osp.join(REPO, CONFIG))
    pipeline = cfg.train_dataloader.dataset.pipeline
    batch_size = cfg.train_dataloader.batch_size
    spec = importlib.util.spec_from_file_location(
        'region_text2shards', osp.join(REPO, 'tools/dataset_converters/region_text2shards.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    result = dict(config=CONFIG, batch_size=batch_size, workers=args.workers,
                  batches=args.batches, cpu_affinity=sorted(os.sched_getaffinity(0)),
                  jsonl=[], shards=[], jsonl_cpu=[], shards_cpu=[])
    with tempfile.TemporaryDirectory() as tmp:
        summary = tool.convert(args.data_root, 'annotations/train.jsonl',
                               osp.join(tmp, 'train-%05d.tar'), args.samples_per_shard)
        result['num_shards'] = len(summary['shards'])
        jsonl = DATASETS.build(dict(type='RegionTextDataset', data_root=args.data_root,
                                    ann_file='annotations/train.jsonl',
                                    pipeline=copy.deepcopy(pipeline)))
        stream = DATASETS.build(dict(
            type='RegionTextShardStream', sources=summary['shards'], seed=0,
            mode='resampled', pipeline=copy.deepcopy(pipeline[1:])))  # no loading step
        kwargs = dict(batch_size=batch_size, num_workers=args.workers,
                      collate_fn=pseudo_collate, persistent_workers=args.workers > 0)
        loaders = dict(jsonl=DataLoader(jsonl, sampler=InfiniteSampler(jsonl, seed=0),
                                        **kwargs),
                       shards=DataLoader(stream, **kwargs))
        # one iterator per loader for all rounds (InfiniteSampler's index generator
        # is made once per sampler)
        if args.stages:
            result['stage_us'] = stage_us(jsonl, stream, summary['shards'][0])
        iters = {name: iter(loader) for name, loader in loaders.items()}
        for r in range(args.rounds):  # the order alternates, so neither always goes first
            for name in (list(iters) if r % 2 == 0 else list(iters)[::-1]):
                wall, cpu = images_per_s(iters[name], args.batches, args.warmup)
                result[name].append(round(wall, 1))
                result[f'{name}_cpu'].append(round(cpu, 1))
    # the median round: one slow or fast round of a shared machine does not decide
    for name in ('jsonl', 'shards'):
        result[f'{name}_images_per_s'] = statistics.median(result[name])
        result[f'{name}_images_per_cpu_s'] = statistics.median(result[f'{name}_cpu'])
    # and the median of the per-round ratios (each round times both loaders back to back)
    result['shards_over_jsonl_per_round'] = round(statistics.median(
        s / j for s, j in zip(result['shards'], result['jsonl'])), 3)
    result['shards_over_jsonl'] = round(
        result['shards_images_per_s'] / result['jsonl_images_per_s'], 3)
    if args.workers == 0:  # the loading runs in this process: its CPU time is the cost
        result['shards_over_jsonl_cpu'] = round(
            result['shards_images_per_cpu_s'] / result['jsonl_images_per_cpu_s'], 3)
        result['shards_over_jsonl_cpu_per_round'] = round(statistics.median(
            s / j for s, j in zip(result['shards_cpu'], result['jsonl_cpu'])), 3)
    pc.emit(result, args.out)


if __name__ == '__main__':
    main()
