# Copyright (c) cllip_mm contributors. All rights reserved.
"""An ImageNet-style classification set for zero-shot image classification."""
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.fileio import get_text

from cllip_mm.registry import DATASETS
from cllip_mm.text.class_names import IMAGENET_CLASSES

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


@DATASETS.register_module()
class ZeroShotImageDataset(BaseDataset):
    """Images with one class label each, for zero-shot classification.

    Two layouts, as published for ImageNet:

    - folder (``ann_file=''``): ``<data_prefix.img>/<class dir>/<image>``; the class
      index is the rank of the class directory among the sorted directories (the
      standard ImageNet order of WordNet ids ``n01440764``, ...);
    - list: ``ann_file`` lines ``<image path relative to data_prefix.img> <label>``
      (mmpretrain's ``meta/val.txt``).

    ``classes`` are the names that are prompted: ``'imagenet'`` (the 1000 names of
    :data:`IMAGENET_CLASSES`), a list, or None: :data:`IMAGENET_CLASSES` when the
    folder holds exactly 1000 class directories, else the directory names (with
    underscores as spaces). Each data info has ``img_path``, ``gt_label``,
    ``vocabulary`` (the classes) and no regions.

    Args:
        ann_file (str): The list file, or '' for the folder layout.
        classes (str | Sequence[str], optional): See above.
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset`.
    """
    METAINFO: dict = dict()

    def __init__(self, ann_file: str = '', *, data_prefix: dict = dict(img=''),
                 classes: Optional[Union[str, Sequence[str]]] = None, **kwargs) -> None:
        if classes == 'imagenet':
            classes = IMAGENET_CLASSES
        self._classes = tuple(classes) if classes is not None else None
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        root = self.data_prefix['img']
        if self.ann_file:
            data_list, num_labels = self._load_list(root)
            classes = self._classes
            if classes is None:
                raise ValueError(f'{self.ann_file}: a list file needs `classes` (e.g. '
                                 "'imagenet')")
        else:
            if not osp.isdir(root):
                raise FileNotFoundError(f'image folder {root} not found')
            dirs = sorted(d for d in os.listdir(root) if osp.isdir(osp.join(root, d)))
            if not dirs:
                raise ValueError(f'{root}: no class directory')
            data_list = []
            for label, d in enumerate(dirs):
                for name in sorted(os.listdir(osp.join(root, d))):
                    if name.lower().endswith(IMG_EXTENSIONS):
                        data_list.append(dict(img_path=osp.join(root, d, name), gt_label=label))
            num_labels = len(dirs)
            classes = self._classes
            if classes is None:
                classes = IMAGENET_CLASSES if len(dirs) == len(IMAGENET_CLASSES) else tuple(
                    d.replace('_', ' ') for d in dirs)
            elif len(classes) != len(dirs):
                raise ValueError(f'{root}: {len(dirs)} class directories but {len(classes)} '
                                 'class names')
        if not data_list:
            raise ValueError(f'{self.ann_file or root}: no image ({", ".join(IMG_EXTENSIONS)})')
        if num_labels > len(classes):
            raise ValueError(f'{self.ann_file or root}: label {num_labels - 1} is out of the '
                             f'{len(classes)} classes')
        self._metainfo['classes'] = tuple(classes)
        for info in data_list:
            info['gt_bboxes'] = np.zeros((0, 4), np.float32)
            info['gt_phrases'] = []
        return data_list

    def _load_list(self, root: str):
        data_list, max_label = [], -1
        for line_no, line in enumerate(get_text(self.ann_file).splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].lstrip('-').isdigit() or int(parts[1]) < 0:
                raise ValueError(f'{self.ann_file}:{line_no}: expected "<image path> <label>" '
                                 f'with a label >= 0, got {line.strip()!r}')
            label = int(parts[1])
            max_label = max(max_label, label)
            data_list.append(dict(img_path=osp.join(root, parts[0]), gt_label=label,
                                  ann_line=line_no))
        return data_list, max_label + 1

    def get_data_info(self, idx: int) -> dict:
        """The data info plus ``vocabulary``, ``ann_file`` and ``on_bad_record``."""
        data_info = super().get_data_info(idx)
        data_info['vocabulary'] = self._metainfo['classes']
        data_info['ann_file'] = self.ann_file or self.data_prefix['img']
        data_info['on_bad_record'] = 'raise'
        return data_info
