# Copyright (c) cllip_mm contributors. All rights reserved.
"""Pack a pipeline's results into model inputs and a ``RegionTextDataSample``."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform, to_tensor
from mmengine.structures import InstanceData

from cllip_mm.registry import TRANSFORMS
from cllip_mm.structures import RegionTextDataSample


@TRANSFORMS.register_module()
class PackRegionTextInputs(BaseTransform):
    """Pack the image and its regions for :class:`CLOC`.

    Returns ``dict(inputs=img, data_samples=sample)``: ``img`` is a CHW tensor of the
    pipeline's dtype (uint8, BGR as loaded); ``sample.gt_regions`` holds ``bboxes``
    FloatTensor [R, 4] (xyxy pixels of ``img_shape``), ``phrases`` list[str],
    ``scores`` FloatTensor [R] (1.0 when ``gt_scores`` is absent) and, when
    ``results['vocabulary']`` is set, ``labels`` LongTensor [R] (index of each phrase
    in the vocabulary, -1 when absent from it). An image-level class index
    ``results['gt_label']`` becomes ``sample.gt_label`` LongTensor [1].

    Args:
        meta_keys (Sequence[str]): Keys copied into the sample's metainfo when they
            are in the results (``skip_reason`` marks an image the metrics leave out).
    """

    def __init__(self,
                 meta_keys: Sequence[str] = ('img_path', 'ori_shape', 'img_shape',
                                             'scale_factor', 'caption', 'flip',
                                             'flip_direction', 'vocabulary',
                                             'sample_idx', 'ann_line', 'captions',
                                             'img_id', 'skip_reason')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim < 3:
            img = img[..., None]
        img = to_tensor(np.ascontiguousarray(img.transpose(2, 0, 1)))

        bboxes = results.get('gt_bboxes')
        bboxes = np.zeros((0, 4), np.float32) if bboxes is None else bboxes
        bboxes = to_tensor(np.asarray(bboxes, dtype=np.float32).reshape(-1, 4))
        phrases = list(results.get('gt_phrases', []))
        if len(phrases) != len(bboxes):
            raise ValueError(f'{len(bboxes)} boxes but {len(phrases)} phrases in '
                             f'{results.get("img_path")}')
        scores = results.get('gt_scores')
        scores = torch.ones(len(bboxes)) if scores is None else to_tensor(
            np.asarray(scores, dtype=np.float32))

        gt_regions = InstanceData(bboxes=bboxes, scores=scores, phrases=phrases)
        vocabulary = results.get('vocabulary')
        if vocabulary is not None:
            index = {phrase: i for i, phrase in enumerate(vocabulary)}
            gt_regions.labels = torch.tensor([index.get(p, -1) for p in phrases],
                                             dtype=torch.long)

        data_sample = RegionTextDataSample(metainfo={
            key: results[key] for key in self.meta_keys if key in results})
        data_sample.gt_regions = gt_regions
        if results.get('gt_label') is not None:
            data_sample.gt_label = torch.tensor([int(results['gt_label'])], dtype=torch.long)
        return dict(inputs=img, data_samples=data_sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
