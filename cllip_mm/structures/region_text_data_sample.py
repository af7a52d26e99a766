# Copyright (c) cllip_mm contributors. All rights reserved.
"""The data sample that carries one image's region-text annotations and predictions."""
from typing import List

from mmengine.structures import BaseDataElement, InstanceData


class RegionTextDataSample(BaseDataElement):
    """Annotations and predictions of one image for CLOC.

    Metainfo (set by the pipeline): ``img_path``, ``ori_shape`` (h, w), ``img_shape``
    (h, w of the network input before padding), ``caption`` (str), ``flip`` and, for
    evaluation, ``vocabulary`` (tuple of phrases the region classifier chooses from).

    Data fields:
        gt_regions (InstanceData): ``bboxes`` FloatTensor [R, 4], xyxy in pixels of
            ``img_shape``; ``phrases`` list[str] of length R; ``scores`` FloatTensor [R]
            (1.0 for human labels); ``labels`` LongTensor [R], the index of each phrase in
            ``vocabulary`` (-1 when it is not in it; only set when a vocabulary is).
        pred_regions (InstanceData): filled by ``CLOC.predict``: ``embeds`` [R, D]
            (L2-normalised region embeddings of the GT boxes), ``scores`` [R, V] cosine
            similarity with the vocabulary (if any), ``ground_bboxes`` [R, 4] the box that
            the grounding head predicts for each GT phrase, xyxy pixels of ``img_shape``.
        image_embed (Tensor [D]) and text_embed (Tensor [D]): L2-normalised embeddings
            of the image and its caption, set by ``CLOC.predict``.
    """

    @property
    def gt_regions(self) -> InstanceData:
        return self._gt_regions

    @gt_regions.setter
    def gt_regions(self, value: InstanceData) -> None:
        self.set_field(value, '_gt_regions', dtype=InstanceData)

    @gt_regions.deleter
    def gt_regions(self) -> None:
        del self._gt_regions

    @property
    def pred_regions(self) -> InstanceData:
        return self._pred_regions

    @pred_regions.setter
    def pred_regions(self, value: InstanceData) -> None:
        self.set_field(value, '_pred_regions', dtype=InstanceData)

    @pred_regions.deleter
    def pred_regions(self) -> None:
        del self._pred_regions


SampleList = List[RegionTextDataSample]
