# Copyright (c) cllip_mm contributors. All rights reserved.
"""Accuracy of the grounding head: phrase -> box (docs/method.md, section 7)."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmdet.structures.bbox import bbox_overlaps
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from cllip_mm.registry import METRICS
from .utils import drop_left_out, get_field, get_tensor, sample_name, samples_to_evaluate


@METRICS.register_module()
class GroundingMetric(BaseMetric):
    """IoU of the box the grounding head predicts for each GT phrase with its GT box.

    Reads from each data sample (what ``CLOC.predict`` writes), all boxes xyxy in
    pixels of ``img_shape``:

    - ``pred_regions.ground_bboxes`` [R, 4]: the predicted box of each GT phrase.
    - ``gt_regions.bboxes`` [R, 4]: the GT boxes, in the same order.
    - ``img_shape`` (h, w): the frame of both, for the whole-image baseline.

    Metrics (prefixed with ``grounding/``), for each threshold t of ``iou_thrs``
    (formatted with ``{t:g}``, e.g. ``acc@0.5``):

    - ``acc@t``: fraction of phrases whose predicted box has IoU >= t with the GT box.
    - ``whole_image_acc@t``: the same when every prediction is the whole image
      ``[0, 0, w, h]``, the score of a model that has learnt nothing about position.
    - ``mean_iou``: mean IoU of the predictions; ``num_phrases``: phrases evaluated.
    - ``num_images_left_out``: images not evaluated (bad images or records skipped
      with ``on_bad_record='skip'``; see :func:`.utils.drop_left_out`).

    A NaN predicted box has IoU 0.

    Args:
        iou_thrs (float | Sequence[float]): IoU thresholds. Defaults to 0.5.
        collect_device (str): 'cpu' or 'gpu', used to collect results across ranks.
        prefix (str, optional): Prefix of the metric names. Defaults to 'grounding'.
    """
    default_prefix: Optional[str] = 'grounding'

    def __init__(self,
                 iou_thrs: Union[float, Sequence[float]] = 0.5,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        iou_thrs = (iou_thrs, ) if isinstance(iou_thrs, (int, float)) else tuple(iou_thrs)
        if not iou_thrs or any(not 0 <= t <= 1 for t in iou_thrs):
            raise ValueError(f'iou_thrs must lie in [0, 1], got {iou_thrs}.')
        self.iou_thrs = tuple(float(t) for t in iou_thrs)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Keep the IoU of each phrase's prediction and of the whole-image box."""
        name = type(self).__name__
        for data_sample in samples_to_evaluate(data_samples, self.results):
            gt_bboxes = get_tensor(
                data_sample, 'gt_regions.bboxes', name, ndim=2, last_dim=4).float()
            if gt_bboxes.shape[0] == 0:
                # No phrase, possibly no prediction either. One result per sample keeps
                # ``collect_results``' removal of distributed padding correct.
                self.results.append(dict(ious=gt_bboxes.new_zeros(0),
                                         whole_ious=gt_bboxes.new_zeros(0)))
                continue
            pred_bboxes = get_tensor(
                data_sample, 'pred_regions.ground_bboxes', name, ndim=2, last_dim=4,
                hint='Does the model have a grounding head?').float()
            if pred_bboxes.shape[0] != gt_bboxes.shape[0]:
                raise ValueError(
                    f'{name}: data sample {sample_name(data_sample)}: '
                    f'"pred_regions.ground_bboxes" has {pred_bboxes.shape[0]} boxes but '
                    f'"gt_regions.bboxes" has {gt_bboxes.shape[0]}.')
            img_shape = get_field(data_sample, 'img_shape', name)
            if len(img_shape) < 2:
                raise ValueError(f'{name}: data sample {sample_name(data_sample)}: '
                                 f'"img_shape" must be (h, w), got {img_shape}.')
            h, w = float(img_shape[0]), float(img_shape[1])
            whole = gt_bboxes.new_tensor([0., 0., w, h]).expand_as(gt_bboxes)
            ious = bbox_overlaps(pred_bboxes, gt_bboxes, is_aligned=True)
            self.results.append(
                dict(
                    ious=ious.nan_to_num(0.),
                    whole_ious=bbox_overlaps(whole, gt_bboxes, is_aligned=True)))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Accuracies over all collected phrases."""
        results, num_left_out = drop_left_out(results, type(self).__name__,
                                              self.dataset_meta)
        ious = torch.cat([res['ious'] for res in results] + [torch.zeros(0)])
        whole_ious = torch.cat([res['whole_ious'] for res in results] + [torch.zeros(0)])
        num_phrases = ious.numel()
        if num_phrases == 0:
            MMLogger.get_current_instance().warning(
                f'{type(self).__name__}: no phrase to ground; accuracies are reported as 0.')
        metrics: Dict[str, float] = {}
        for thr in self.iou_thrs:
            metrics[f'acc@{thr:g}'] = _mean(ious >= thr)
        metrics['mean_iou'] = _mean(ious)
        for thr in self.iou_thrs:
            metrics[f'whole_image_acc@{thr:g}'] = _mean(whole_ious >= thr)
        metrics['num_phrases'] = num_phrases
        metrics['num_images_left_out'] = num_left_out
        return metrics


def _mean(values: torch.Tensor) -> float:
    """Mean as a float, 0 for an empty tensor."""
    return values.float().mean().item() if values.numel() else 0.0
