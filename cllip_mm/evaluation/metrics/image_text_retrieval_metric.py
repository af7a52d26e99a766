# Copyright (c) cllip_mm contributors. All rights reserved.
"""Image-text retrieval recall@k over the whole evaluation set (spec section 7)."""
from typing import Dict, Hashable, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from cllip_mm.registry import METRICS
from .utils import (LEFT_OUT, drop_left_out, get_field, get_tensor, left_out_reason,
                    sample_name)


def _group_ids(keys: Sequence[Hashable]) -> torch.Tensor:
    """[N] int64: equal keys get equal ids."""
    ids: Dict[Hashable, int] = {}
    return torch.tensor([ids.setdefault(key, len(ids)) for key in keys], dtype=torch.long)


@METRICS.register_module()
class ImageTextRetrievalMetric(BaseMetric):
    """Recall@k of image->text and text->image retrieval.

    Every data sample contributes one image (``image_embed`` [D]) and one text
    (``text_embed`` [D], the embedding of the ``caption`` metainfo), both written by
    ``CLOC.predict``. The N x N cosine similarity matrix of all images against all texts
    of the set is built ``chunk_size`` rows at a time, so memory stays O(chunk_size * N).

    Ground truth: image i and text j match when ``caption_i == caption_j`` (exact string
    equality) and, with ``same_image_positive``, also when both come from the same
    ``img_path`` (several captions of one image). So a caption that occurs for several
    images is a correct answer for each of them, and each of those images is a correct
    answer for it: their embeddings are identical and no model could tell them apart.
    A query is a hit at k when fewer than k *non-matching* candidates score at least as
    high as its best match; ties are broken against the model (a constant scorer gets
    nothing right, NaN scores count as wrong).

    Metrics (prefixed with ``retrieval/``), fractions in [0, 1], for each k in ``topk``:
    ``i2t_R@k``, ``t2i_R@k`` and their mean ``mean_R@k``; ``num_images_left_out``:
    images not evaluated (bad images or records skipped with ``on_bad_record='skip'``;
    see :func:`.utils.drop_left_out`). A left-out image is no query and no candidate.

    Args:
        topk (int | Sequence[int]): The k of recall@k. Defaults to (1, 5, 10).
        same_image_positive (bool): Also match an image with every caption of the same
            ``img_path`` (ignored for samples without ``img_path``). Defaults to True.
        chunk_size (int): Query rows of the similarity matrix computed at once.
        collect_device (str): 'cpu' or 'gpu', used to collect results across ranks.
        prefix (str, optional): Prefix of the metric names. Defaults to 'retrieval'.
    """
    default_prefix: Optional[str] = 'retrieval'

    def __init__(self,
                 topk: Union[int, Sequence[int]] = (1, 5, 10),
                 same_image_positive: bool = True,
                 chunk_size: int = 1024,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        topk = (topk, ) if isinstance(topk, int) else tuple(topk)
        if not topk or any(not isinstance(k, int) or k < 1 for k in topk):
            raise ValueError(f'topk must be positive ints, got {topk}.')
        if chunk_size < 1:
            raise ValueError(f'chunk_size must be positive, got {chunk_size}.')
        self.topk = tuple(sorted(set(topk)))
        self.same_image_positive = same_image_positive
        self.chunk_size = chunk_size

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Keep the image and text embedding, caption and image path of each sample."""
        name = type(self).__name__
        for data_sample in data_samples:
            reason = left_out_reason(data_sample)
            if reason is not None:
                self.results.append({LEFT_OUT: reason})
                continue
            caption = get_field(data_sample, 'caption', name)
            if not isinstance(caption, str):
                raise TypeError(f'{name}: data sample {sample_name(data_sample)}: '
                                f'"caption" must be a str, got {type(caption).__name__}.')
            try:
                img_path = get_field(data_sample, 'img_path', name)
            except KeyError:
                img_path = None
            self.results.append(
                dict(
                    image_embed=get_tensor(data_sample, 'image_embed', name, ndim=1),
                    text_embed=get_tensor(data_sample, 'text_embed', name, ndim=1),
                    caption=caption,
                    img_path=img_path))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Recall@k in both directions over all collected samples."""
        results, num_left_out = drop_left_out(results, type(self).__name__,
                                              self.dataset_meta)
        if not results:
            MMLogger.get_current_instance().warning(
                f'{type(self).__name__}: no samples; recalls are reported as 0.')
            metrics = {f'{d}_R@{k}': 0.0 for d in ('i2t', 't2i', 'mean') for k in self.topk}
            return dict(metrics, num_images_left_out=num_left_out)
        dims = {res[key].numel() for res in results for key in ('image_embed', 'text_embed')}
        if len(dims) != 1:
            raise ValueError(f'{type(self).__name__}: image and text embeddings must all '
                             f'have the same width, got widths {sorted(dims)}.')
        images = F.normalize(torch.stack([res['image_embed'] for res in results]).float(), dim=1)
        texts = F.normalize(torch.stack([res['text_embed'] for res in results]).float(), dim=1)
        caption_ids = _group_ids([res['caption'] for res in results])
        image_ids = None
        if self.same_image_positive:
            # Samples without img_path only match themselves by image.
            image_ids = _group_ids([
                res['img_path'] if res['img_path'] is not None else ('#', i)
                for i, res in enumerate(results)
            ])
        # The relation "match" is symmetric, so both directions use the same ids.
        i2t = self._ranks(images, texts, caption_ids, image_ids)
        t2i = self._ranks(texts, images, caption_ids, image_ids)

        metrics: Dict[str, float] = {}
        for k in self.topk:
            metrics[f'i2t_R@{k}'] = (i2t < k).float().mean().item()
        for k in self.topk:
            metrics[f't2i_R@{k}'] = (t2i < k).float().mean().item()
        for k in self.topk:
            metrics[f'mean_R@{k}'] = (metrics[f'i2t_R@{k}'] + metrics[f't2i_R@{k}']) / 2
        metrics['num_images_left_out'] = num_left_out
        return metrics

    def _ranks(self, queries: torch.Tensor, keys: torch.Tensor, caption_ids: torch.Tensor,
               image_ids: Optional[torch.Tensor]) -> torch.Tensor:
        """[N] int64: for each query, the non-matching keys scoring >= its best match.

        Query i and key j match when their caption ids (or image ids) are equal; the
        diagonal always matches.
        """
        ranks = []
        for start in range(0, queries.shape[0], self.chunk_size):
            end = min(start + self.chunk_size, queries.shape[0])
            sims = queries[start:end] @ keys.T  # [C, N]
            match = caption_ids[start:end, None] == caption_ids[None, :]
            if image_ids is not None:
                match |= image_ids[start:end, None] == image_ids[None, :]
            best = sims.masked_fill(~match, float('-inf')).amax(dim=1, keepdim=True)
            # ``~(a < b)`` rather than ``a >= b`` so that NaN counts against the model.
            ranks.append((~(sims < best) & ~match).sum(dim=1))
        return torch.cat(ranks)
