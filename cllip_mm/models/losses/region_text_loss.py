# Copyright (c) cllip_mm contributors. All rights reserved.
import functools
import hashlib
from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import get_rank, get_world_size
from torch import Tensor

from cllip_mm.registry import MODELS
from ..utils.logit_scale import INIT_LOGIT_SCALE, MAX_LOGIT_SCALE
from .utils import all_gather_sizes, gather_variable_with_grad, global_value

_INT63_MASK = (1 << 63) - 1


def phrase_keys(phrases: Sequence[str], device: Optional[torch.device] = None) -> Tensor:
    """Stable identity keys of phrase texts, equal across processes and runs.

    The key is the first 8 bytes of the BLAKE2b digest of the UTF-8 text, read little-endian
    and masked to a non-negative int64 (unlike Python's ``hash``, it is not salted per
    process). Identical texts get identical keys; the text is not normalised.

    Args:
        phrases (Sequence[str]): U phrase texts.
        device (torch.device, optional): Device of the result.

    Returns:
        Tensor: [U] int64.
    """
    keys = []
    for i, phrase in enumerate(phrases):
        if not isinstance(phrase, str):
            raise TypeError(f'phrase_keys: phrases[{i}] must be a str, got '
                            f'{type(phrase).__name__}: {phrase!r}')
        digest = hashlib.blake2b(phrase.encode('utf-8'), digest_size=8).digest()
        keys.append(int.from_bytes(digest, 'little') & _INT63_MASK)
    return torch.tensor(keys, dtype=torch.long, device=device)


@MODELS.register_module()
class RegionTextContrastiveLoss(nn.Module):
    """Multi-positive region-text InfoNCE (docs/method.md, section 4.3).

    Phrases are identified by ``phrase_keys``: after gathering (scope ``'global'`` or
    ``'image'``), phrase embeddings are de-duplicated by key, keeping the first copy. With
    ``s = exp(min(logit_scale, max_logit_scale))`` and the logits ``s * r_k . p_c`` of the
    regions ``r_k`` against the distinct phrases ``p_c``:

    - region -> text: cross-entropy over the distinct phrases, the region's own phrase
      being the one positive; mean over regions.
    - text -> region: for each distinct phrase that has regions, cross-entropy over the
      regions with the target spread evenly over all regions of that phrase; mean over those
      phrases. Phrases without any region only serve as negatives of region -> text.

    ``loss = loss_weight * 1/2 (L_r2t + L_t2r)``.

    Negative scopes (``negatives``):

    - ``'global'``: regions and phrases of all ranks (gathered with gradients).
    - ``'local'``: this rank's only; the loss is then per rank and DDP averages it.
    - ``'image'``: gathered, but a region only competes with the phrases of its own image
      and a phrase only with the regions of that image. The columns are then the distinct
      (image, phrase) pairs and logits across images are masked to ``-inf``. Image indices
      are made globally unique by pairing them with the rank.

    If the scope holds no region at all, the loss is a zero that still depends on the
    inputs and the scale, so DDP sees every parameter used.

    Args:
        init_logit_scale (float): Initial log scale. Defaults to
            :data:`~cllip_mm.models.utils.INIT_LOGIT_SCALE` (log(1 / 0.07)).
        max_logit_scale (float): Upper clamp of the log scale. Defaults to
            :data:`~cllip_mm.models.utils.MAX_LOGIT_SCALE` (log 100, CLIP's cap).
        negatives (str): ``'global'`` (default), ``'local'`` or ``'image'``.
        share_logit_scale (bool): If True the module has no temperature of its own and
            :meth:`forward` must receive ``logit_scale`` (e.g. CLIP's log-scale parameter).
            Defaults to False.
        local_loss (bool): With ``'global'`` / ``'image'`` negatives, each rank computes
            only the region -> text rows of its own regions ([R_k, C]) and the text ->
            region rows of the columns ``c`` with ``c % N == rank`` ([~C/N, R]) instead
            of the whole [R, C] logits (memory linear in the global batch), and its share
            of the loss; same DDP-averaged gradients and value as the global form (see
            ``ClipContrastiveLoss``). Defaults to True.
        text_filter_threshold (float, optional): The paper's negative filtering (sec. 3.4,
            Table 2 row 10; 0.9 in the paper): a (region, text) pair whose text is not the
            region's own but has a cosine above this with it leaves both denominators
            (region -> text and text -> region); works with every scope and both loss
            forms. None (default) merges identical texts only.
        loss_weight (float): Multiplier of the loss. Defaults to 1.
    """
    NEGATIVES = ('global', 'local', 'image')

    def __init__(self,
                 init_logit_scale: float = INIT_LOGIT_SCALE,
                 max_logit_scale: float = MAX_LOGIT_SCALE,
                 negatives: str = 'global',
                 share_logit_scale: bool = False,
                 local_loss: bool = True,
                 text_filter_threshold: Optional[float] = None,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if text_filter_threshold is not None and not -1 <= text_filter_threshold <= 1:
            raise ValueError(f'{type(self).__name__}: text_filter_threshold is a cosine in '
                             f'[-1, 1] (or None), got {text_filter_threshold!r}')
        self.text_filter_threshold = text_filter_threshold
        self.local_loss = local_loss
        if negatives not in self.NEGATIVES:
            raise ValueError(f'{type(self).__name__}: negatives must be one of '
                             f'{self.NEGATIVES}, got {negatives!r}')
        if share_logit_scale:
            self.register_parameter('logit_scale', None)
        else:
            self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.max_logit_scale = max_logit_scale
        self.negatives = negatives
        self.loss_weight = loss_weight

    def get_scale(self, logit_scale: Optional[Tensor] = None) -> Tensor:
        """The clamped scale ``s`` (0-dim tensor), from the own or the given log-scale."""
        if logit_scale is None:
            if self.logit_scale is None:
                raise ValueError(f'{type(self).__name__} was built with share_logit_scale=True:'
                                 ' pass the shared `logit_scale` to forward')
            logit_scale = self.logit_scale
        elif self.logit_scale is not None:
            raise ValueError(f'{type(self).__name__} has its own logit_scale; build it with '
                             'share_logit_scale=True to pass one to forward')
        return logit_scale.clamp(max=self.max_logit_scale).exp()

    def forward(self,
                region_embeds: Tensor,
                phrase_embeds: Tensor,
                region_phrase_index: Tensor,
                phrase_keys: Tensor,
                region_image_index: Optional[Tensor] = None,
                logit_scale: Optional[Tensor] = None) -> Tensor:
        """
        Args:
            region_embeds (Tensor): [R, D] L2-normalised embeddings of this rank's valid
                regions.
            phrase_embeds (Tensor): [U, D] L2-normalised embeddings of this rank's phrases
                (ideally each distinct text once).
            region_phrase_index (Tensor): [R] int, index into the U phrases.
            phrase_keys (Tensor): [U] int64 text identity, see :func:`phrase_keys`.
            region_image_index (Tensor, optional): [R] int, index of each region's image in
                this rank's batch. Required for ``negatives='image'``.
            logit_scale (Tensor, optional): Shared log-scale (0-dim), only with
                ``share_logit_scale=True``.

        Returns:
            Tensor: the scalar loss (global unless ``negatives='local'``).
        """
        self._check_inputs(region_embeds, phrase_embeds, region_phrase_index, phrase_keys,
                           region_image_index)
        scale = self.get_scale(logit_scale)
        # Integer attributes of each region, gathered together: [R, 1] key, or [R, 3]
        # (key, rank, image) for the image scope.
        region_ints = phrase_keys[region_phrase_index.long()].unsqueeze(1)
        if self.negatives == 'image':
            region_ints = torch.stack([
                region_ints[:, 0],
                torch.full_like(region_ints[:, 0], get_rank()),
                region_image_index.to(region_ints)
            ], dim=1)
        # This rank's regions are rows [start, stop) of the gathered ones.
        start, stop = 0, region_embeds.size(0)
        if self.negatives != 'local':
            sizes = all_gather_sizes(region_embeds.size(0), region_embeds.device)
            start = sum(sizes[:get_rank()])
            stop = start + region_embeds.size(0)
            region_embeds = gather_variable_with_grad(region_embeds, sizes)
            region_ints = gather_variable_with_grad(region_ints, sizes)
            sizes = all_gather_sizes(phrase_embeds.size(0), phrase_embeds.device)
            phrase_embeds = gather_variable_with_grad(phrase_embeds, sizes)
            phrase_keys = gather_variable_with_grad(phrase_keys, sizes)

        num_regions = region_embeds.size(0)
        if num_regions == 0:
            return (region_embeds.sum() + phrase_embeds.sum() + scale) * 0

        # De-duplicate the phrases by key, keeping the first copy of each.
        uniq_keys, inverse = torch.unique(phrase_keys, sorted=True, return_inverse=True)
        order = torch.arange(inverse.numel(), device=inverse.device)
        first = order.new_full((uniq_keys.numel(), ), inverse.numel()).scatter_reduce(
            0, inverse, order, reduce='amin')
        phrases = phrase_embeds[first]  # [K, D]
        # [R] index of each region's distinct phrase, in [0, K).
        region_phrase = torch.searchsorted(uniq_keys, region_ints[:, 0].contiguous())

        keep = None  # [R, C] bool: the (region, column) pairs in the denominators
        if self.negatives == 'image':
            image_ids = torch.unique(region_ints[:, 1:], dim=0, return_inverse=True)[1]
            columns, region_col = torch.unique(
                torch.stack([image_ids, region_phrase], dim=1), dim=0, return_inverse=True)
            col_embeds = phrases[columns[:, 1]]  # [C, D], C distinct (image, phrase) pairs
            keep = image_ids[:, None] == columns[None, :, 0]  # [R, C]
        else:
            col_embeds, region_col = phrases, region_phrase
        if self.local_loss and self.negatives != 'local':
            # The filter's [R, C] test only for this rank's rows and columns: the full
            # matrix is O(global batch^2) on every rank.
            near = None if self.text_filter_threshold is None else functools.partial(
                self.near_duplicate_texts, col_embeds, region_col)
            return self.loss_weight * global_value(
                self._local_share(scale, region_embeds, col_embeds, region_col, keep,
                                  start, stop, near))
        if self.text_filter_threshold is not None:
            near = self.near_duplicate_texts(col_embeds, region_col)
            keep = ~near if keep is None else keep & ~near

        logits = scale * region_embeds @ col_embeds.t()  # [R, C]
        if keep is not None:
            logits = logits.masked_fill(~keep, float('-inf'))
        loss_r2t = F.cross_entropy(logits, region_col)

        cols = torch.arange(col_embeds.size(0), device=logits.device)
        positive = cols[:, None] == region_col[None, :]  # [C, R]
        num_pos = positive.sum(dim=1)
        log_prob = logits.t().log_softmax(dim=1)
        # torch.where keeps -inf (masked) entries out of the sum and of the gradient.
        loss_t2r = -torch.where(positive, log_prob, 0.).sum(dim=1) / num_pos.clamp(min=1)
        loss_t2r = loss_t2r[num_pos > 0].mean()
        return self.loss_weight * 0.5 * (loss_r2t + loss_t2r)

    @torch.no_grad()
    def near_duplicate_texts(self, col_embeds: Tensor, region_col: Tensor,
                             rows: Optional[Tensor] = None,
                             cols: Optional[Tensor] = None) -> Tensor:
        """[R', C'] bool: True where column c's text is another text than region r's own
        whose cosine with it exceeds ``text_filter_threshold`` (the paper's negative
        filtering, sec. 3.4). No gradient flows through the test.

        Args:
            col_embeds (Tensor): [C, D] L2-normalised text embeddings of the columns.
            region_col (Tensor): [R] each region's own column.
            rows (Tensor, optional): [R'] the regions to test (default: all R).
            cols (Tensor, optional): [C'] the columns to test (default: all C).
        """
        own = region_col if rows is None else region_col[rows]  # [R']
        if cols is None:
            cols = torch.arange(col_embeds.size(0), device=col_embeds.device)
        similarity = col_embeds[own] @ col_embeds[cols].t()  # [R', C']
        return (similarity > self.text_filter_threshold) & (cols[None, :] != own[:, None])

    @staticmethod
    def _local_share(scale: Tensor, region_embeds: Tensor, col_embeds: Tensor,
                     region_col: Tensor, keep: Optional[Tensor], start: int,
                     stop: int, near: Optional[Callable] = None) -> Tensor:
        """This rank's share ``L_k`` of the loss (``sum_k L_k = N * L``).

        Args:
            region_embeds (Tensor): [R, D] all ranks' regions; this rank's are rows
                ``start:stop``.
            col_embeds (Tensor): [C, D] the columns (distinct phrases or (image, phrase)).
            region_col (Tensor): [R] column of each region.
            keep (Tensor, optional): [R, C] bool, False where left out of the denominators.
            near (callable, optional): ``near(rows, cols)`` -> [R', C'] bool, also left out
                (the text filter, :meth:`near_duplicate_texts`), asked only for this
                rank's rows and columns.
        """
        world_size, rank = get_world_size(), get_rank()
        num_regions = region_embeds.size(0)
        all_cols = torch.arange(col_embeds.size(0), device=col_embeds.device)
        # region -> text: this rank's rows [R_k, C].
        logits = scale * region_embeds[start:stop] @ col_embeds.t()
        drop = None if keep is None else ~keep[start:stop]
        if near is not None:
            mine_rows = near(torch.arange(start, stop, device=all_cols.device), all_cols)
            drop = mine_rows if drop is None else drop | mine_rows
        if drop is not None:
            logits = logits.masked_fill(drop, float('-inf'))
        loss_r2t = F.cross_entropy(logits, region_col[start:stop], reduction='sum') / num_regions
        # text -> region: the columns c with c % N == rank, against all regions [C_k, R].
        num_pos = torch.bincount(region_col, minlength=col_embeds.size(0))
        mine = all_cols[rank::world_size]
        logits = scale * col_embeds[mine] @ region_embeds.t()
        drop = None if keep is None else ~keep[:, mine].t()
        if near is not None:
            mine_cols = near(None, mine).t()  # [C_k, R]
            drop = mine_cols if drop is None else drop | mine_cols
        if drop is not None:
            logits = logits.masked_fill(drop, float('-inf'))
        positive = mine[:, None] == region_col[None, :]  # [C_k, R]
        log_prob = logits.log_softmax(dim=1)
        # torch.where keeps -inf (masked) entries out of the sum and of the gradient.
        per_col = -torch.where(positive, log_prob, 0.).sum(dim=1) / num_pos[mine].clamp(min=1)
        loss_t2r = per_col.sum() / (num_pos > 0).sum()
        return world_size * 0.5 * (loss_r2t + loss_t2r)

    def _check_inputs(self, region_embeds: Tensor, phrase_embeds: Tensor,
                      region_phrase_index: Tensor, phrase_keys: Tensor,
                      region_image_index: Optional[Tensor]) -> None:
        name = type(self).__name__
        if region_embeds.dim() != 2 or phrase_embeds.dim() != 2 or \
                region_embeds.size(1) != phrase_embeds.size(1):
            raise ValueError(f'{name}: region_embeds [R, D] and phrase_embeds [U, D] need the '
                             f'same D, got {tuple(region_embeds.shape)} and '
                             f'{tuple(phrase_embeds.shape)}')
        num_regions, num_phrases = region_embeds.size(0), phrase_embeds.size(0)
        if phrase_keys.shape != (num_phrases, ) or phrase_keys.dtype != torch.long:
            raise ValueError(f'{name}: phrase_keys must be int64 [U={num_phrases}], got '
                             f'{phrase_keys.dtype} {tuple(phrase_keys.shape)}')
        indices = {'region_phrase_index': (region_phrase_index, num_phrases)}
        if self.negatives == 'image':
            if region_image_index is None:
                raise ValueError(f"{name}: negatives='image' needs region_image_index")
            indices['region_image_index'] = (region_image_index, None)
        for key, (index, upper) in indices.items():
            if index.shape != (num_regions, ) or index.is_floating_point():
                raise ValueError(f'{name}: {key} must be an integer tensor [R={num_regions}], '
                                 f'got {index.dtype} {tuple(index.shape)}')
            if num_regions and (int(index.min()) < 0 or
                                (upper is not None and int(index.max()) >= upper)):
                raise ValueError(f'{name}: {key} must lie in [0, {upper or "inf"}), got values '
                                 f'in [{int(index.min())}, {int(index.max())}]')

    def extra_repr(self) -> str:
        return (f'negatives={self.negatives!r}, max_logit_scale={self.max_logit_scale:.4f}, '
                f'shared_scale={self.logit_scale is None}, local_loss={self.local_loss}, '
                f'text_filter_threshold={self.text_filter_threshold}, '
                f'loss_weight={self.loss_weight}')
