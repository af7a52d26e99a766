# Copyright (c) cllip_mm contributors. All rights reserved.
"""Ground-truth boxes of a COCO-style instances file for zero-shot region
classification (COCO val2017, LVIS v1 val, the synthetic export)."""
import logging
import os.path as osp
from collections import Counter
from typing import List, Optional

import numpy as np
from mmdet.datasets.api_wrappers import COCO
from mmengine.dataset import BaseDataset
from mmengine.fileio import get_local_path
from mmengine.logging import print_log

from cllip_mm.registry import DATASETS
from cllip_mm.text.class_names import lvis_prompt_name


@DATASETS.register_module()
class CocoRegionDataset(BaseDataset):
    """Images with their ground-truth boxes and class names, from COCO-format JSON.

    Reads the file with mmdet's COCO API (pycocotools), as published: COCO
    ``instances_val2017.json`` (``file_name``) or LVIS ``lvis_v1_val.json`` (images
    named by ``coco_url``: ``http://images.cocodataset.org/val2017/x.jpg`` becomes
    ``val2017/x.jpg`` under ``data_prefix['img']``, mmdet's LVIS convention).

    Each image becomes a data info for the region-text pipeline: ``img_path``,
    ``img_id``, ``width``, ``height``, ``gt_bboxes`` float32 [N, 4] (xyxy pixels,
    clipped to the image), ``gt_phrases`` (the class name of each box, a vocabulary
    entry) and ``vocabulary`` (the class names), so ``PackRegionTextInputs`` sets
    ``gt_regions.labels``.

    The vocabulary is ``metainfo['classes']`` when given (each must be a category of
    the file, after the name rule below; boxes of other categories are left out),
    else every category of the file in id order. Category names become prompt names
    by turning underscores into spaces (LVIS ``'aerosol_can'`` -> ``'aerosol can'``).

    Boxes left out, counted and logged in one line: crowd boxes (``iscrowd=1``),
    boxes under 1 pixel wide or high (mmdet's rule), boxes smaller than
    ``min_box_area`` (0: no size filter, the paper's protocol as far as it says) and
    boxes of categories outside the vocabulary. Images without a box left are dropped
    when ``filter_empty`` is True.

    Args:
        ann_file (str): The instances JSON, relative to ``data_root``.
        min_box_area (float): Minimum box area in pixels of the original image.
        filter_empty (bool): Drop images without boxes.
        backend_args (dict, optional): Arguments of the mmengine file backend.
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset` (``data_root``,
            ``data_prefix=dict(img=...)``, ``metainfo``, ``pipeline``, ``test_mode``).
    """
    METAINFO: dict = dict()

    def __init__(self, ann_file: str, *, data_prefix: dict = dict(img=''),
                 min_box_area: float = 0.0, filter_empty: bool = True,
                 backend_args: Optional[dict] = None, **kwargs) -> None:
        self.min_box_area = float(min_box_area)
        self.filter_empty = filter_empty
        self.backend_args = backend_args
        self.skip_counts: Counter = Counter()
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        with get_local_path(self.ann_file, backend_args=self.backend_args) as local_path:
            coco = COCO(local_path)
        categories = sorted(coco.dataset.get('categories', []), key=lambda c: c['id'])
        if not categories:
            raise ValueError(f'{self.ann_file}: field `categories`: no category')
        names = {c['id']: lvis_prompt_name(c['name']) for c in categories}
        by_name = {}
        for cat_id, name in names.items():
            if name in by_name:
                raise ValueError(f'{self.ann_file}: field `categories`: two categories are '
                                 f'named {name!r} (ids {by_name[name]} and {cat_id})')
            by_name[name] = cat_id
        classes = self._metainfo.get('classes')
        if classes is None:
            classes = tuple(names[c['id']] for c in categories)
        else:
            classes = tuple(classes)
            missing = [c for c in classes if c not in by_name]
            if missing:
                raise ValueError(f'{self.ann_file}: metainfo classes {missing[:5]} are not '
                                 f'categories of the file ({len(missing)} missing)')
        self._metainfo['classes'] = classes
        vocabulary = set(classes)

        self.skip_counts = Counter()
        data_list = []
        for img_id in coco.get_img_ids():
            info = coco.load_imgs([img_id])[0]
            data_info = self._parse_image(info, coco.load_anns(coco.get_ann_ids(img_ids=[img_id])),
                                          names, vocabulary)
            if data_info['gt_phrases'] or not self.filter_empty:
                data_list.append(data_info)
            else:
                self.skip_counts['images without boxes'] += 1
        self._log_skips(len(data_list))
        if not data_list:
            raise ValueError(f'{self.ann_file}: no image with a box of the {len(classes)} classes')
        return data_list

    def _parse_image(self, info: dict, anns: List[dict], names: dict, vocabulary: set) -> dict:
        where = f'{self.ann_file}: image id {info.get("id")}'
        for key in ('width', 'height'):
            if not isinstance(info.get(key), (int, float)) or info[key] <= 0:
                raise ValueError(f'{where}: field `{key}`: expected a positive number, '
                                 f'got {info.get(key)!r}')
        if info.get('file_name'):
            file_name = info['file_name']
        elif info.get('coco_url'):
            file_name = '/'.join(info['coco_url'].split('/')[-2:])
        else:
            raise ValueError(f'{where}: fields `file_name` / `coco_url`: missing')
        w, h = float(info['width']), float(info['height'])
        bboxes, phrases = [], []
        for ann in anns:
            bbox = ann.get('bbox')
            if not (isinstance(bbox, list) and len(bbox) == 4):
                raise ValueError(f'{where}: annotation {ann.get("id")}: field `bbox`: '
                                 f'expected [x, y, w, h], got {bbox!r}')
            if ann.get('iscrowd', 0):
                self.skip_counts['crowd boxes'] += 1
                continue
            x, y, bw, bh = (float(v) for v in bbox)
            x1, y1 = max(x, 0.), max(y, 0.)
            x2, y2 = min(x + bw, w), min(y + bh, h)
            if x2 - x1 < 1 or y2 - y1 < 1:
                self.skip_counts['boxes under 1 pixel'] += 1
                continue
            if bw * bh < self.min_box_area:
                self.skip_counts[f'boxes under {self.min_box_area:g} pixels'] += 1
                continue
            name = names.get(ann.get('category_id'))
            if name is None:
                raise ValueError(f'{where}: annotation {ann.get("id")}: field `category_id`: '
                                 f'{ann.get("category_id")!r} is not a category')
            if name not in vocabulary:
                self.skip_counts['boxes of other classes'] += 1
                continue
            bboxes.append([x1, y1, x2, y2])
            phrases.append(name)
        return dict(
            img_path=osp.join(self.data_prefix['img'], file_name), img_id=info['id'],
            width=int(w), height=int(h),
            gt_bboxes=np.array(bboxes, dtype=np.float32).reshape(-1, 4), gt_phrases=phrases)

    def _log_skips(self, num_kept: int) -> None:
        if self.skip_counts:
            reasons = ', '.join(f'{k}: {v}' for k, v in sorted(self.skip_counts.items()))
            print_log(f'{type(self).__name__}({self.ann_file}): kept {num_kept} images; left '
                      f'out {reasons}', logger='current', level=logging.INFO)

    def get_data_info(self, idx: int) -> dict:
        """The data info plus ``vocabulary``, ``ann_file`` and ``on_bad_record``."""
        data_info = super().get_data_info(idx)
        data_info['vocabulary'] = self._metainfo['classes']
        data_info['ann_file'] = self.ann_file
        data_info['on_bad_record'] = 'raise'
        return data_info
