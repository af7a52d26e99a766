# Copyright (c) cllip_mm contributors. All rights reserved.
"""Pre-flight check of a dataset: parse every record and decode every image.

    python tools/misc/check_dataset.py CONFIG [--split val] [--nproc 8] [--out report.json]

Reads the annotation file of ``{split}_dataloader.dataset`` with
``on_bad_record='skip'`` (every bad record and region is collected instead of stopping
at the first), then decodes every image in ``--nproc`` processes with a progress bar,
through the same ``LoadImageFromFileChecked`` as training (unreadable images, sizes
that differ from the record's ``width`` / ``height``, with the EXIF orientation when
it explains the mismatch). Writes a JSON report (every bad record with its line,
reason and message, counts per reason, and how many images carry a non-trivial EXIF
orientation), prints a summary, and exits with 1 when anything is bad.
"""
import argparse
import json
import sys
from collections import Counter
from typing import Optional, Tuple

from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.utils import track_parallel_progress, track_progress

from cllip_mm.registry import DATASETS, TRANSFORMS
from cllip_mm.utils import register_all_modules

_CHECK_KEYS = ('img_path', 'width', 'height', 'ann_file', 'ann_line', 'gt_bboxes')


def parse_args():
    parser = argparse.ArgumentParser(description='Check every record and image of a dataset')
    parser.add_argument('config', help='config file')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train',
                        help='which {split}_dataloader.dataset to check')
    parser.add_argument('--nproc', type=int, default=4, help='decoding processes')
    parser.add_argument('--out', help='JSON report (default: <ann_file>.check.json '
                        'next to the annotation file)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value')
    return parser.parse_args()


def check_image(task: Tuple[dict, dict]) -> Optional[dict]:
    """Decode one image as training would; None when fine, else a report entry."""
    from cllip_mm.datasets.transforms.loading import BadImageError, _exif_orientation
    info, load_cfg = task
    load = TRANSFORMS.build(load_cfg)
    results = {k: info[k] for k in _CHECK_KEYS if k in info}
    results['on_bad_record'] = 'raise'
    try:
        load(results)
    except BadImageError as e:
        return dict(line=info.get('ann_line'), image=info['img_path'], reason=e.reason,
                    message=str(e))
    orientation = _exif_orientation(info['img_path'], load_cfg.get('backend_args'))
    return None if orientation == 1 else dict(exif_orientation=orientation)


def load_transform_cfg(dataset_cfg: dict) -> dict:
    """The dataset pipeline's loading step (``LoadImageFromFileChecked`` by default)."""
    for step in dataset_cfg.get('pipeline', []):
        if step.get('type') in ('LoadImageFromFileChecked', 'LoadImageFromFile'):
            return dict(step, type='LoadImageFromFileChecked')
    return dict(type='LoadImageFromFileChecked')


def check_dataset(dataset_cfg: dict, nproc: int = 4) -> dict:
    """Parse and decode a whole dataset; returns the report (a JSON-able dict)."""
    load_cfg = load_transform_cfg(dataset_cfg)
    # every record: no pipeline, no filtering of images without regions
    dataset = DATASETS.build(dict(dataset_cfg, pipeline=[], on_bad_record='skip',
                                  filter_cfg=None))
    bad = [dict(image=None, **record) for record in getattr(dataset, 'bad_records', [])]
    tasks = [(dataset.get_data_info(i), load_cfg) for i in range(len(dataset))]
    if nproc > 1 and len(tasks) > 1:
        results = track_parallel_progress(check_image, tasks, nproc=nproc)
    else:
        results = track_progress(check_image, tasks)
    exif = Counter()
    for result in results:
        if result is None:
            continue
        if 'exif_orientation' in result:
            exif[result['exif_orientation']] += 1
        else:
            bad.append(dict(level='record', **result))
    bad.sort(key=lambda b: (b.get('line') or 0, b['level']))
    return dict(
        ann_file=dataset.ann_file,
        # non-blank lines: the records kept plus those dropped when reading
        num_records=len(dataset) + sum(b['level'] == 'record' for b in bad
                                       if b.get('image') is None),
        num_bad_records=sum(b['level'] == 'record' for b in bad),
        num_bad_regions=sum(b['level'] == 'region' for b in bad),
        counts=dict(Counter(f'{b["level"]}: {b["reason"]}' for b in bad)),
        exif_orientations={str(k): v for k, v in sorted(exif.items())},
        bad=bad)


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'cllip_mm'))
    dataset_cfg = cfg[f'{args.split}_dataloader']['dataset'].to_dict()
    report = check_dataset(dataset_cfg, nproc=args.nproc)
    out = args.out or report['ann_file'] + '.check.json'
    with open(out, 'w') as f:
        json.dump(report, f, indent=1)
    print(f'\n{report["ann_file"]}: {report["num_records"]} records, '
          f'{report["num_bad_records"]} bad records, {report["num_bad_regions"]} bad '
          f'regions {report["counts"] or ""}; EXIF orientations other than 1: '
          f'{report["exif_orientations"] or "none"} (boxes must refer to the displayed '
          f'image); report: {out}')
    for entry in report['bad'][:20]:
        print('  ' + entry['message'])
    if len(report['bad']) > 20:
        print(f'  ... and {len(report["bad"]) - 20} more in {out}')
    sys.exit(1 if report['bad'] else 0)


if __name__ == '__main__':
    main()
