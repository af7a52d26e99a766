# Copyright (c) cllip_mm contributors. All rights reserved.
"""Image-text retrieval recall@k over the whole evaluation set (docs/method.md, section 7)."""
from typing import Dict, Hashable, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from cllip_mm.registry import METRICS
from .utils import as_topk, drop_left_out, get_field, get_tensor, sample_name, samples_to_evaluate


def _group_ids(keys: Sequence[Hashable]) -> torch.Tensor:
    """[N] int64: equal keys get equal ids."""
    ids: Dict[Hashable, int] = {}
    return torch.tensor([ids.setdefault(key, len(ids)) for key in keys], dtype=torch.long)


@METRICS.register_module()
class ImageTextRetrievalMetric(BaseMetric):
    """Recall@k of image->text and text->image retrieval.

    Every data sample contributes one image (``image_embed`` [D]) and either one text
    (``text_embed`` [D], the embedding of the ``caption`` metainfo) or several
    (``text_embeds`` [K, D] of the ``captions`` metainfo: COCO / Flickr30k give 5 per
    image), all written by ``CLOC.predict``. The similarity matrix of all images
    against all texts of the set is built ``chunk_size`` query rows at a time, so memory
    stays O(chunk_size * N).

    Ground truth: image i and text j match when text j is a caption of sample i, when
    its string equals one of the captions of image i (exact equality) and, with
    ``same_image_positive``, when both come from the same ``img_path``. So a caption
    that occurs for several images is a correct answer for each of them: their
    embeddings are identical and no model could tell them apart. A query is a hit at k
    when fewer than k *non-matching* candidates score at least as high as its best
    match; ties are broken against the model (a constant scorer gets nothing right, NaN
    scores count as wrong). With K captions per image this is the standard protocol:
    image->text is right when any of its captions ranks within k, text->image when
    its image does.

    Metrics (prefixed with ``retrieval/``), fractions in [0, 1], for each k in ``topk``:
    ``i2t_R@k``, ``t2i_R@k`` and their mean ``mean_R@k``; ``num_images`` and
    ``num_texts``; ``num_images_left_out``: images not evaluated (bad images or records
    skipped with ``on_bad_record='skip'``; see :func:`.utils.drop_left_out`). A left-out
    image is no query and no candidate.

    Args:
        topk (int | Sequence[int]): The k of recall@k. Defaults to (1, 5, 10).
        same_image_positive (bool): Also match an image with every caption of the same
            ``img_path`` (ignored for samples without ``img_path``). Defaults to True.
        chunk_size (int): Query rows of the similarity matrix computed at once.
        collect_device (str): 'cpu' or 'gpu', used to collect results across ranks.
        prefix (str, optional): Prefix of the metric names. Defaults to 'retrieval'.
    """
    default_prefix: Optional[str] = 'retrieval'
    #: Names of the two directions in the metric keys (query side first).
    directions = ('i2t', 't2i')

    def __init__(self,
                 topk: Union[int, Sequence[int]] = (1, 5, 10),
                 same_image_positive: bool = True,
                 chunk_size: int = 1024,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = as_topk(topk)
        if chunk_size < 1:
            raise ValueError(f'chunk_size must be positive, got {chunk_size}.')
        self.same_image_positive = same_image_positive
        self.chunk_size = chunk_size

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Keep one result per sample (``collect_results`` drops distributed padding by
        counting samples): its image, its texts and their strings, its image path."""
        name = type(self).__name__
        for data_sample in samples_to_evaluate(data_samples, self.results):
            try:
                captions = get_field(data_sample, 'captions', name)
                key = 'text_embeds'
            except KeyError:
                captions = [get_field(data_sample, 'caption', name)]
                key = 'text_embed'
            if not all(isinstance(c, str) for c in captions):
                raise TypeError(f'{name}: data sample {sample_name(data_sample)}: '
                                f'captions must be str, got {captions!r}.')
            texts = get_tensor(data_sample, key, name, ndim=2 if key == 'text_embeds' else 1)
            texts = texts.reshape(-1, texts.shape[-1])
            if texts.shape[0] != len(captions):
                raise ValueError(f'{name}: data sample {sample_name(data_sample)}: '
                                 f'{texts.shape[0]} text embeddings for {len(captions)} captions.')
            try:
                img_path = get_field(data_sample, 'img_path', name)
            except KeyError:
                img_path = None
            self.results.append(
                dict(
                    image_embeds=get_tensor(data_sample, 'image_embed', name, ndim=1)[None],
                    text_embeds=texts,
                    texts=list(captions),
                    text_owner=torch.zeros(len(captions), dtype=torch.long),
                    image_keys=[img_path]))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Recall@k in both directions over all collected samples.

        Each result holds ``image_embeds`` [n, D], ``image_keys`` (n hashables or None:
        equal keys are the same image), ``text_embeds`` [m, D], ``texts`` (m strings)
        and ``text_owner`` [m] (the index in the result's images of each text's image).
        """
        results, num_left_out = drop_left_out(results, type(self).__name__,
                                              self.dataset_meta)
        q, k = self.directions
        results = [r for r in results if len(r['image_embeds']) or len(r['text_embeds'])]
        num_images = sum(len(r['image_embeds']) for r in results)
        num_texts = sum(len(r['text_embeds']) for r in results)
        counts = {f'num_{self.item_names[0]}': num_images, f'num_{self.item_names[1]}': num_texts,
                  'num_images_left_out': num_left_out}
        if num_images == 0 or num_texts == 0:
            MMLogger.get_current_instance().warning(
                f'{type(self).__name__}: nothing to retrieve; recalls are reported as 0.')
            metrics = {f'{d}_R@{n}': 0.0 for d in (q, k, 'mean') for n in self.topk}
            metrics.update(counts)
            return metrics
        dims = {r[key].shape[-1] for r in results for key in ('image_embeds', 'text_embeds')}
        if len(dims) != 1:
            raise ValueError(f'{type(self).__name__}: all embeddings must have the same '
                             f'width, got widths {sorted(dims)}.')
        images = F.normalize(torch.cat([r['image_embeds'] for r in results]).float(), dim=1)
        texts = F.normalize(torch.cat([r['text_embeds'] for r in results]).float(), dim=1)

        # Global owner of each text, and which caption strings each image has.
        offsets = torch.tensor([0] + [len(r['image_embeds']) for r in results]).cumsum(0)
        owner = torch.cat([r['text_owner'] + offsets[i] for i, r in enumerate(results)])
        text_ids = _group_ids([t for r in results for t in r['texts']])
        has_text = torch.zeros(num_images, int(text_ids.max()) + 1, dtype=torch.bool)
        has_text[owner, text_ids] = True
        image_ids = None
        if self.same_image_positive:
            # Images without a key (img_path) only match themselves.
            keys = [key for r in results for key in (r['image_keys'] or [None] * len(
                r['image_embeds']))]
            image_ids = _group_ids([key if key is not None else ('#', i)
                                    for i, key in enumerate(keys)])
        image_index = torch.arange(num_images)

        def match_i2t(rows: slice) -> torch.Tensor:
            """[len(rows), num_texts] bool: image rows vs every text."""
            m = has_text[rows][:, text_ids] | (owner[None] == image_index[rows, None])
            if image_ids is not None:
                m |= image_ids[rows, None] == image_ids[owner][None]
            return m

        def match_t2i(rows: slice) -> torch.Tensor:
            """[len(rows), num_images] bool: text rows vs every image."""
            m = has_text[:, text_ids[rows]].T | (owner[rows, None] == image_index[None])
            if image_ids is not None:
                m |= image_ids[owner[rows], None] == image_ids[None]
            return m

        i2t = self._ranks(images, texts, match_i2t)
        t2i = self._ranks(texts, images, match_t2i)
        metrics: Dict[str, float] = {}
        for n in self.topk:
            metrics[f'{q}_R@{n}'] = (i2t < n).float().mean().item()
        for n in self.topk:
            metrics[f'{k}_R@{n}'] = (t2i < n).float().mean().item()
        for n in self.topk:
            metrics[f'mean_R@{n}'] = (metrics[f'{q}_R@{n}'] + metrics[f'{k}_R@{n}']) / 2
        metrics.update(counts)
        return metrics

    #: What the two sides are called in ``num_*``.
    item_names = ('images', 'texts')

    def _ranks(self, queries: torch.Tensor, keys: torch.Tensor, match) -> torch.Tensor:
        """[Nq] int64: for each query, the non-matching keys scoring >= its best match.

        ``match(rows)`` gives the bool [len(rows), Nk] ground truth of the query rows.
        """
        ranks = []
        for start in range(0, queries.shape[0], self.chunk_size):
            rows = slice(start, min(start + self.chunk_size, queries.shape[0]))
            sims = queries[rows] @ keys.T  # [C, Nk]
            m = match(rows)
            best = sims.masked_fill(~m, float('-inf')).amax(dim=1, keepdim=True)
            # ``~(a < b)`` rather than ``a >= b`` so that NaN counts against the model.
            ranks.append((~(sims < best) & ~m).sum(dim=1))
        return torch.cat(ranks)


@METRICS.register_module()
class RegionRetrievalMetric(ImageTextRetrievalMetric):
    """Recall@k of region->text and text->region retrieval (the paper's GRIT protocol).

    Every GT region of every sample is a query against the captions (phrases) of all
    regions of the set, and every caption against all regions. Reads
    ``pred_regions.embeds`` [R, D] (region embeddings of the GT boxes),
    ``pred_regions.phrase_embeds`` [R, D] (embeddings of their phrases) and
    ``gt_regions.phrases`` (R strings), written by ``CLOC.predict`` with
    ``test_cfg.outputs`` holding ``'phrase_embeds'``.

    A region matches its own phrase and every phrase with the same string (regions
    captioned "a dog" in different images all match "a dog"); ties count against the
    model, as in :class:`ImageTextRetrievalMetric`.

    Metrics (prefixed with ``region_retrieval/``): ``r2t_R@k``, ``t2r_R@k``,
    ``mean_R@k``, ``num_regions``, ``num_phrases``, ``num_images_left_out`` (samples
    left out at load time, as in :class:`ImageTextRetrievalMetric`, are not evaluated).
    """
    default_prefix: Optional[str] = 'region_retrieval'
    directions = ('r2t', 't2r')
    item_names = ('regions', 'phrases')

    def __init__(self, topk: Union[int, Sequence[int]] = (1, 5, 10), chunk_size: int = 1024,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(topk=topk, same_image_positive=False, chunk_size=chunk_size,
                         collect_device=collect_device, prefix=prefix)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """One result per sample: its regions (as "images") and their phrases."""
        name = type(self).__name__
        for data_sample in samples_to_evaluate(data_samples, self.results):
            phrases = list(get_field(data_sample, 'gt_regions.phrases', name))
            if not phrases:
                empty = torch.zeros(0, 0)
                self.results.append(dict(image_embeds=empty, text_embeds=empty, texts=[],
                                         text_owner=torch.zeros(0, dtype=torch.long),
                                         image_keys=None))
                continue
            regions = get_tensor(data_sample, 'pred_regions.embeds', name, ndim=2)
            texts = get_tensor(data_sample, 'pred_regions.phrase_embeds', name, ndim=2,
                               hint="Set the model's test_cfg.outputs to include "
                               "'phrase_embeds'.")
            if not len(regions) == len(texts) == len(phrases):
                raise ValueError(
                    f'{name}: data sample {sample_name(data_sample)}: {len(regions)} region '
                    f'embeddings, {len(texts)} phrase embeddings, {len(phrases)} phrases.')
            self.results.append(dict(image_embeds=regions, text_embeds=texts, texts=phrases,
                                     text_owner=torch.arange(len(phrases)), image_keys=None))
