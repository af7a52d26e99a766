# Copyright (c) cllip_mm contributors. All rights reserved.
"""Zero-shot region classification with ground-truth boxes (docs/method.md, section 7)."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from cllip_mm.registry import METRICS
from .utils import as_topk, drop_left_out, get_tensor, sample_name, samples_to_evaluate


@METRICS.register_module()
class RegionClassificationMetric(BaseMetric):
    """Top-k and mean per-class accuracy of classifying GT regions against a vocabulary.

    Reads from each data sample (what ``CLOC.predict`` writes):

    - ``pred_regions.scores`` [R, V]: similarity of each GT region to each phrase of
      the vocabulary (``data_sample.vocabulary``).
    - ``gt_regions.labels`` [R]: the index of each region's phrase in the vocabulary;
      ``-1`` means "not in the vocabulary": such regions are ignored and counted in
      ``num_ignored``.

    Ties are broken against the model: a region is correct at k when fewer than k
    *other* classes score at least as high as its label (so a constant scorer gets
    nothing right, and NaN scores count as wrong).

    Metrics (prefixed with ``region_cls/``):

    - ``top{k}``: fraction of labelled regions whose label is in the top k, for each
      ``k`` in ``topk`` with ``k <= V``.
    - ``mean_class_acc``: top-1 accuracy of each class that has at least one region,
      averaged over those classes.
    - ``num_regions``: number of labelled regions; ``num_ignored``: regions with label -1.
    - ``num_images_left_out``: images not evaluated (bad images or records skipped
      with ``on_bad_record='skip'``; see :func:`.utils.drop_left_out`).

    Args:
        topk (int | Sequence[int]): The k of the top-k accuracies. Defaults to (1, 5).
        collect_device (str): 'cpu' or 'gpu', used to collect results across ranks.
        prefix (str, optional): Prefix of the metric names. Defaults to 'region_cls'.
        headline (str, optional): A metric to report first (``'mean_class_acc'`` or
            ``'top{k}'``): what tables list first and ``save_best='auto'`` picks. None
            keeps the order above.
    """
    default_prefix: Optional[str] = 'region_cls'
    #: The data sample fields of the scores [R, V] and labels [R].
    scores_field = 'pred_regions.scores'
    labels_field = 'gt_regions.labels'

    def __init__(self,
                 topk: Union[int, Sequence[int]] = (1, 5),
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 headline: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = as_topk(topk)
        choices = ['mean_class_acc'] + [f'top{k}' for k in self.topk]
        if headline is not None and headline not in choices:
            raise ValueError(f'headline must be one of {choices}, got {headline!r}.')
        self.headline = headline

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Keep, per sample, the rank of each labelled region's GT class."""
        name = type(self).__name__
        for data_sample in samples_to_evaluate(data_samples, self.results):
            labels = get_tensor(data_sample, self.labels_field, name, ndim=1,
                                hint='Region classification needs a vocabulary: set the '
                                'dataset\'s metainfo "classes".').long()
            if labels.numel() == 0:
                # An image without regions may carry no predictions either. Still keep
                # one result per sample: ``collect_results`` drops the samples that
                # the distributed sampler padded by truncating to the dataset size.
                self.results.append(
                    dict(labels=labels, ranks=labels.clone(), num_ignored=0,
                         num_classes=None))
                continue
            scores = get_tensor(data_sample, self.scores_field, name, ndim=2,
                                hint='Does the model embed regions and is a vocabulary set?')
            num_classes = scores.shape[1]
            if scores.shape[0] != labels.shape[0]:
                raise ValueError(
                    f'{name}: data sample {sample_name(data_sample)}: '
                    f'"{self.scores_field}" has {scores.shape[0]} rows but '
                    f'"{self.labels_field}" has {labels.shape[0]} labels.')
            bad = (labels < -1) | (labels >= num_classes)
            if bad.any():
                raise ValueError(
                    f'{name}: data sample {sample_name(data_sample)}: '
                    f'"{self.labels_field}" must lie in [-1, {num_classes - 1}] '
                    f'(vocabulary of {num_classes}), got {labels[bad].tolist()}.')
            keep = labels >= 0
            labels, scores = labels[keep], scores[keep].float()
            label_scores = scores.gather(1, labels[:, None])
            # Classes scoring at least as high as the label, minus the label itself.
            # ``~(a < b)`` rather than ``a >= b`` so that NaN counts against the model.
            ranks = (~(scores < label_scores)).sum(1) - 1
            self.results.append(
                dict(
                    labels=labels,
                    ranks=ranks,
                    num_ignored=int((~keep).sum()),
                    num_classes=num_classes))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Accuracies over all collected regions."""
        results, num_left_out = drop_left_out(results, type(self).__name__,
                                              self.dataset_meta)
        num_classes = {res['num_classes'] for res in results} - {None}
        if len(num_classes) > 1:
            raise ValueError(f'{type(self).__name__}: the vocabulary size differs between '
                             f'samples: {sorted(num_classes)}; labels would not be '
                             'comparable.')
        num_ignored = sum(res['num_ignored'] for res in results)
        labels = torch.cat([res['labels'] for res in results] + [torch.zeros(0).long()])
        ranks = torch.cat([res['ranks'] for res in results] + [torch.zeros(0).long()])
        num_regions = labels.numel()
        metrics: Dict[str, float] = {}
        if num_regions == 0:
            MMLogger.get_current_instance().warning(
                f'{type(self).__name__}: no region with a label in the vocabulary '
                f'({num_ignored} ignored); accuracies are reported as 0.')
            metrics.update({f'top{k}': 0.0 for k in self.topk})
            metrics.update(mean_class_acc=0.0, num_regions=0, num_ignored=num_ignored,
                           num_images_left_out=num_left_out)
            return self._headline_first(metrics)

        vocab_size = num_classes.pop()
        for k in self.topk:
            if k <= vocab_size:
                metrics[f'top{k}'] = (ranks < k).float().mean().item()
        correct = (ranks == 0).double()
        per_class_total = torch.bincount(labels, minlength=vocab_size)
        per_class_correct = torch.bincount(labels, weights=correct, minlength=vocab_size)
        present = per_class_total > 0
        metrics['mean_class_acc'] = (per_class_correct[present] /
                                     per_class_total[present]).mean().item()
        metrics['num_regions'] = num_regions
        metrics['num_ignored'] = num_ignored
        metrics['num_images_left_out'] = num_left_out
        return self._headline_first(metrics)

    def _headline_first(self, metrics: Dict[str, float]) -> Dict[str, float]:
        """``metrics`` with ``self.headline`` moved to the front (when computed: a
        ``top{k}`` with k above the vocabulary size is not)."""
        if self.headline is None or self.headline not in metrics:
            return metrics
        return {self.headline: metrics[self.headline],
                **{k: v for k, v in metrics.items() if k != self.headline}}


@METRICS.register_module()
class ImageClassificationMetric(RegionClassificationMetric):
    """Top-k and mean per-class accuracy of zero-shot image classification (ImageNet).

    The whole image is the one "region": reads ``pred_scores`` [1, V] (the image
    embedding against the class-name embeddings of ``vocabulary``, written by
    ``CLOC.predict`` with ``test_cfg.outputs`` holding ``'image_scores'``) and
    ``gt_label`` [1] (the class index). Same tie rule and metrics as
    :class:`RegionClassificationMetric` (``num_regions`` counts images), prefixed with
    ``image_cls/``.
    """
    default_prefix: Optional[str] = 'image_cls'
    scores_field = 'pred_scores'
    labels_field = 'gt_label'
