# Copyright (c) cllip_mm contributors. All rights reserved.
"""Draw samples of a dataset after its pipeline (boxes and phrases), as mmdet's
``browse_dataset.py`` does, to check data and transforms by eye.

Example::

    python tools/analysis_tools/browse_dataset.py \\
        configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py --split train --num 8 \\
        --output-dir work_dirs/browse --not-show

Any dataset whose pipeline packs a ``RegionTextDataSample`` (``gt_regions`` with
``bboxes`` and ``phrases``: the JSON Lines ``RegionTextDataset`` and any other
region-text dataset) or an mmdet ``DetDataSample`` (``gt_instances`` with ``labels``,
named by the dataset's ``classes``; or by ``text`` for grounding sets such as ODVG)
is drawn. The pictures are what the model sees: the image after the pipeline's
transforms, with the boxes in its frame.
"""
import argparse
import os.path as osp
import sys

import numpy as np
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

try:
    import cllip_mm  # noqa: F401
except ImportError:  # run from a source checkout without `pip install -e .`
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from cllip_mm.registry import DATASETS, VISUALIZERS  # noqa: E402
from cllip_mm.structures import RegionTextDataSample  # noqa: E402
from cllip_mm.utils import register_all_modules  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Browse a region-text dataset after its pipeline')
    parser.add_argument('config', help='config file')
    parser.add_argument('--split', choices=('train', 'val', 'test'), default='train',
                        help='which dataloader of the config to browse')
    parser.add_argument('--num', type=int, default=10, help='number of samples to draw')
    parser.add_argument('--start', type=int, default=0, help='index of the first sample')
    parser.add_argument('--output-dir', default=None, help='write the pictures here')
    parser.add_argument('--not-show', action='store_true', help='do not open windows')
    parser.add_argument('--show-interval', type=float, default=2, help='seconds per picture')
    parser.add_argument('--min-size', type=int, default=256,
                        help='enlarge smaller images (short side) before drawing')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def instance_name(label: int, metainfo: dict, classes) -> str:
    """The text of a detection label: a span of the caption (mmdet grounding samples:
    ``text`` str + ``tokens_positive`` {label: [[start, end], ...]}), an entry of the
    sample's ``text`` (a label map or a class list, e.g. ODVG's OD mode) or of the
    dataset's ``classes``; the label itself when none names it."""
    text = metainfo.get('text')
    if isinstance(text, str):
        spans = metainfo.get('tokens_positive')
        spans = spans.get(label) if isinstance(spans, dict) else (
            spans[label] if isinstance(spans, (list, tuple)) and 0 <= label < len(spans) else None)
        return ' '.join(text[s:e] for s, e in spans) if spans else str(label)
    names = text if text is not None else classes
    if isinstance(names, dict):
        return str(names.get(str(label), names.get(label, label)))
    if names is not None and 0 <= label < len(names):
        return str(names[label])
    return str(label)


def as_region_sample(sample, metainfo: dict) -> RegionTextDataSample:
    """A packed sample -> a ``RegionTextDataSample`` with ``gt_regions`` to draw."""
    if 'gt_regions' in sample:
        return sample
    if 'gt_instances' not in sample:
        raise TypeError(f'{type(sample).__name__} has neither gt_regions nor gt_instances: '
                        'not a region-text or detection sample')
    instances = sample.gt_instances
    bboxes = instances.bboxes
    bboxes = getattr(bboxes, 'tensor', bboxes)  # mmdet's HorizontalBoxes
    labels = instances.labels.tolist() if 'labels' in instances else [-1] * len(bboxes)
    phrases = [instance_name(i, sample.metainfo, metainfo.get('classes')) for i in labels]
    out = RegionTextDataSample(metainfo=sample.metainfo)
    out.gt_regions = InstanceData(bboxes=bboxes, phrases=phrases)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'cllip_mm'))
    register_all_modules(init_default_scope=False)
    dataset = DATASETS.build(cfg[f'{args.split}_dataloader'].dataset)
    visualizer = VISUALIZERS.build(dict(type='RegionTextVisualizer', name='browse_dataset',
                                        min_size=args.min_size))
    end = min(args.start + args.num, len(dataset))
    for index in range(args.start, end):
        item = dataset[index]
        img = item['inputs'].permute(1, 2, 0).numpy()  # CHW BGR (the pipeline's) -> HWC
        img = np.ascontiguousarray(img[..., ::-1])  # RGB for the visualizer
        sample = as_region_sample(item['data_samples'], dataset.metainfo)
        img_path = sample.metainfo.get('img_path') or f'{index:08d}'
        name = f'{index:06d}_{osp.splitext(osp.basename(img_path))[0]}'
        out_file = osp.join(args.output_dir, f'{name}.png') if args.output_dir else None
        visualizer.add_datasample(name, img, sample, draw_gt=True, draw_pred=False,
                                  show=not args.not_show, wait_time=args.show_interval,
                                  out_file=out_file)
        regions = sample.gt_regions
        print(f'[{index}] {img_path}: {len(regions)} regions {list(regions.phrases)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
