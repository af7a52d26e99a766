# Copyright (c) cllip_mm contributors. All rights reserved.
"""Region filters (VESL stage 4), applied in the order of the config.

``filter(regions, image_size) -> regions``: ``regions`` is an ``InstanceData`` with
``bboxes`` float32 [N, 4] (xyxy, absolute pixels of the image), ``scores`` [N] and
``labels`` int64 [N] (phrase index within the image); ``image_size`` is
``(width, height)``. The runner counts, per filter ``name``, how many regions it
dropped. NMS runs mmcv's compiled kernels on contiguous float32 tensors.
"""
from typing import Optional, Tuple

import torch
from mmengine.structures import InstanceData

from cllip_mm.registry import VESL_STAGES


@VESL_STAGES.register_module()
class ScoreThreshold:
    """Keep regions with ``score >= score_thr``. The paper keeps boxes whose
    confidence is *above* 0.1 (App. C.1); its preset does that in the detector
    (``OWLv2Detector(score_thr=0.1)``, :func:`~cllip_mm.vesl.detectors.label_boxes`)."""

    def __init__(self, score_thr: float = 0.1, name: str = 'score') -> None:
        self.score_thr, self.name = score_thr, name

    def __call__(self, regions: InstanceData, image_size: Tuple[int, int]) -> InstanceData:
        return regions[regions.scores >= self.score_thr]


@VESL_STAGES.register_module()
class MinBoxSize:
    """Keep boxes at least ``min_size`` pixels wide and high and covering at least
    ``min_rel_area`` of the image."""

    def __init__(self, min_size: float = 4., min_rel_area: float = 0.,
                 name: str = 'min_size') -> None:
        self.min_size, self.min_rel_area, self.name = min_size, min_rel_area, name

    def __call__(self, regions: InstanceData, image_size: Tuple[int, int]) -> InstanceData:
        b = regions.bboxes
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        keep = (w >= self.min_size) & (h >= self.min_size) & (w > 0) & (h > 0)
        if self.min_rel_area > 0:
            keep &= w * h >= self.min_rel_area * image_size[0] * image_size[1]
        return regions[keep]


@VESL_STAGES.register_module()
class PerPhraseNMS:
    """NMS among the boxes of the same phrase (``mmcv.ops.batched_nms``)."""

    def __init__(self, iou_thr: float = 0.5, name: str = 'per_phrase_nms') -> None:
        self.iou_thr, self.name = iou_thr, name

    def __call__(self, regions: InstanceData, image_size: Tuple[int, int]) -> InstanceData:
        if len(regions) == 0:
            return regions
        from cllip_mm.models.layers import batched_nms
        _, keep = batched_nms(regions.bboxes, regions.scores, regions.labels,
                              dict(type='nms', iou_threshold=self.iou_thr))
        return regions[keep]


@VESL_STAGES.register_module()
class CrossPhraseNMS:
    """NMS across phrases: of near-identical boxes with different phrases, keep the
    best-scoring one (``mmcv.ops.nms``)."""

    def __init__(self, iou_thr: float = 0.9, name: str = 'cross_phrase_nms') -> None:
        self.iou_thr, self.name = iou_thr, name

    def __call__(self, regions: InstanceData, image_size: Tuple[int, int]) -> InstanceData:
        if len(regions) == 0:
            return regions
        from cllip_mm.models.layers import nms
        _, keep = nms(regions.bboxes, regions.scores, self.iou_thr)
        return regions[keep]


@VESL_STAGES.register_module()
class MaxRegions:
    """Keep the ``max_per_image`` best-scoring regions, and at most
    ``max_per_phrase`` per phrase."""

    def __init__(self, max_per_image: int = 50, max_per_phrase: Optional[int] = None,
                 name: str = 'max_regions') -> None:
        self.max_per_image, self.max_per_phrase, self.name = \
            max_per_image, max_per_phrase, name

    def __call__(self, regions: InstanceData, image_size: Tuple[int, int]) -> InstanceData:
        order = torch.sort(regions.scores, descending=True, stable=True).indices
        if self.max_per_phrase is not None:
            labels = regions.labels[order]
            rank = torch.zeros_like(labels)
            for label in labels.unique():
                mask = labels == label
                rank[mask] = torch.arange(int(mask.sum()))
            order = order[rank < self.max_per_phrase]
        return regions[order[:self.max_per_image]]
