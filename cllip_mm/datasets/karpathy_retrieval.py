# Copyright (c) cllip_mm contributors. All rights reserved.
"""COCO 5k / Flickr30k 1k image-text retrieval in Karpathy's split files."""
import json
import os.path as osp
from typing import List, Optional

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.fileio import get_text

from cllip_mm.registry import DATASETS


@DATASETS.register_module()
class KarpathyRetrievalDataset(BaseDataset):
    """One split of Karpathy's ``dataset_coco.json`` / ``dataset_flickr30k.json``.

    Layout (as published): ``{"images": [{"filepath": "val2014", "filename":
    "COCO_val2014_000000391895.jpg", "split": "test", "sentences": [{"raw": "A man
    ..."}, ...]}, ...]}`` (Flickr30k has no ``filepath``). Also read: the list layout
    of ALBEF / BLIP (``coco_karpathy_test.json``: ``[{"image": "val2014/x.jpg",
    "caption": ["...", ...]}]``, every entry of the file being of the split).

    Each image of ``split`` becomes a data info with ``img_path``
    (``<data_prefix.img>/<filepath>/<filename>``), ``captions`` (every sentence's
    ``raw`` text, stripped; COCO's 5k test split has 25,010 of them) and no regions:
    one image embedding and its K caption embeddings per sample, the standard
    protocol (``ImageTextRetrievalMetric``).

    Args:
        ann_file (str): The JSON file, relative to ``data_root``.
        split (str): ``'test'`` (COCO 5k, Flickr30k 1k), ``'val'``, ...
        max_captions (int, optional): Keep the first K captions of each image.
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset`.
    """
    METAINFO: dict = dict()

    def __init__(self, ann_file: str, *, split: str = 'test', data_prefix: dict = dict(img=''),
                 max_captions: Optional[int] = None, **kwargs) -> None:
        self.split = split
        self.max_captions = max_captions
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        try:
            raw = json.loads(get_text(self.ann_file))
        except json.JSONDecodeError as e:
            raise ValueError(f'{self.ann_file}: invalid JSON ({e.msg} at line {e.lineno})') from e
        if isinstance(raw, dict) and isinstance(raw.get('images'), list):
            entries = [(i, e) for i, e in enumerate(raw['images'])
                       if isinstance(e, dict) and e.get('split') == self.split]
            layout = 'karpathy'
        elif isinstance(raw, list):
            entries, layout = list(enumerate(raw)), 'list'
        else:
            raise ValueError(f'{self.ann_file}: expected Karpathy\'s {{"images": [...]}} or a '
                             'list of {"image", "caption"} entries')
        data_list = []
        for index, entry in entries:
            where = f'{self.ann_file}: images[{index}]'
            if not isinstance(entry, dict):
                raise ValueError(f'{where}: expected an object, got {entry!r}')
            if layout == 'karpathy':
                for key in ('filename', 'sentences'):
                    if key not in entry:
                        raise ValueError(f'{where}: field `{key}`: missing')
                path = osp.join(entry.get('filepath', ''), entry['filename'])
                captions = [s.get('raw') if isinstance(s, dict) else None
                            for s in entry['sentences']]
                field = 'sentences[].raw'
            else:
                if 'image' not in entry or 'caption' not in entry:
                    raise ValueError(f'{where}: fields `image` and `caption` are required')
                path, captions = entry['image'], entry['caption']
                captions = [captions] if isinstance(captions, str) else captions
                field = 'caption'
            if not captions or not all(isinstance(c, str) and c.strip() for c in captions):
                raise ValueError(f'{where}: field `{field}`: expected non-empty strings, '
                                 f'got {captions!r}')
            captions = [c.strip() for c in captions][:self.max_captions]
            data_list.append(dict(img_path=osp.join(self.data_prefix['img'], path),
                                  captions=captions, gt_bboxes=np.zeros((0, 4), np.float32),
                                  gt_phrases=[]))
        if not data_list:
            raise ValueError(f'{self.ann_file}: no image of split {self.split!r}')
        return data_list

    def get_data_info(self, idx: int) -> dict:
        data_info = super().get_data_info(idx)
        data_info['ann_file'] = self.ann_file
        data_info['on_bad_record'] = 'raise'
        return data_info
