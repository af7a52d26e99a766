# Copyright (c) cllip_mm contributors. All rights reserved.
"""Source mixing for map-style data: per-epoch sample counts or weights, resumable in O(1)."""
from typing import List, Optional, Sequence

import numpy as np
import torch

from cllip_mm.registry import DATA_SAMPLERS
from .resumable_infinite_sampler import ResumableInfiniteSampler

# Seed domains: the generators are seeded with ``[seed, DOMAIN, ...]`` so that an
# epoch's order and a source's cycle never share one. Fixed values: renumbering one
# changes the sample order, and a resumed run would not continue the interrupted one.
#: the order of an epoch's samples: ``[seed, SEED_EPOCH_ORDER, epoch]``
SEED_EPOCH_ORDER = 0
#: a source's cycle: ``[seed, SEED_SOURCE_CYCLE, source, cycle]``
SEED_SOURCE_CYCLE = 1


def counts_from_weights(weights: Sequence[float], total: int) -> List[int]:
    """Split ``total`` samples among sources in proportion to ``weights``, exactly:
    largest remainders (ties to the earlier source), so the counts sum to ``total``
    and each differs from ``total * w / sum(w)`` by less than one."""
    w = np.asarray(weights, dtype=np.float64)
    quota = total * w / w.sum()
    counts = np.floor(quota).astype(np.int64)
    rest = int(total - counts.sum())
    # stable argsort of the negated remainders: larger remainder first, then index
    counts[np.argsort(-(quota - counts), kind='stable')[:rest]] += 1
    return counts.tolist()


@DATA_SAMPLERS.register_module()
class ResumableSampleSizeSampler(ResumableInfiniteSampler):
    """Mix the sources of a ``ConcatDataset`` with fixed per-epoch sample counts (or
    weights), as an infinite stream that resumes in O(1).

    This is mmdet's ``CustomSampleSizeSampler`` (same ``dataset_size`` / ``ratio_mode``
    arguments, ``-1`` = the whole source) made resumable. mmdet's sampler draws the
    ``dataset_size[i]`` samples of source ``i`` from a ``RandomCycleIter`` whose state
    carries over from epoch to epoch, so epoch ``e``'s samples depend on all the
    epochs before: resuming there means replaying them, and the state is not in the
    checkpoint. Here source ``i`` has a *cycle stream*, the concatenation of
    permutations ``P_i,0, P_i,1, ...`` of its indices, cycle ``c`` seeded by ``(seed,
    SEED_SOURCE_CYCLE, i, c)``; epoch ``e`` takes the positions ``[e * m_i, (e + 1) * m_i)`` of it
    (``m_i`` samples, without repetition inside a cycle, each sample of a cycle used
    before the next cycle starts, like ``RandomCycleIter``) for every source, and the
    union is permuted with the seed ``(seed, SEED_EPOCH_ORDER, e)``. An epoch is therefore a function of
    ``(seed, e)`` alone, computed with ``O(m_i + len(source_i))`` work, so starting at
    any position costs the same at iteration 10 and 10^6. Ranks interleave the global
    stream as :class:`ResumableInfiniteSampler` does (whose position, state and
    resume mechanism this sampler inherits: the state goes in the checkpoint through
    :class:`~cllip_mm.engine.SamplerStateHook`).

    Unlike mmdet's sampler, a count may exceed the source's length (the source is
    up-sampled: it cycles more than once per epoch).

    Args:
        dataset (ConcatDataset): The sources (``dataset.datasets``; mmengine's
            ``ConcatDataset``, ``ignore_keys=['classes']`` when the vocabularies
            differ).
        dataset_size (Sequence[int | float], optional): Samples of each source per
            epoch; ``-1`` takes the whole source once. With ``ratio_mode``, fractions
            of each source's length.
        ratio_mode (bool): ``dataset_size`` holds fractions. Defaults to False.
        weights (Sequence[float], optional): Instead of ``dataset_size``: relative
            weights; ``epoch_size`` samples per epoch are split among the sources
            in proportion (exactly, by :func:`counts_from_weights`).
        epoch_size (int, optional): Samples per epoch with ``weights``; defaults to
            the total length of the sources.
        shuffle (bool): Shuffle cycles and epochs; without it epoch ``e`` is each
            source's next ``m_i`` indices in order, sources one after the other.
        seed (int, optional): None draws one, synchronised across ranks.
    """

    RESUME_KEYS = ResumableInfiniteSampler.RESUME_KEYS + ('source_sizes',
                                                          'num_per_epoch')

    def __init__(self,
                 dataset,
                 dataset_size: Optional[Sequence[float]] = None,
                 ratio_mode: bool = False,
                 weights: Optional[Sequence[float]] = None,
                 epoch_size: Optional[int] = None,
                 shuffle: bool = True,
                 seed: Optional[int] = None) -> None:
        sources = getattr(dataset, 'datasets', None)
        if not sources:
            raise TypeError(f'{type(self).__name__} mixes the sources of a '
                            f'ConcatDataset; got {type(dataset).__name__}')
        self.source_sizes = [len(d) for d in sources]
        self.num_per_epoch = self._counts(dataset_size, ratio_mode, weights, epoch_size)
        self.offsets = np.concatenate([[0], np.cumsum(self.source_sizes)[:-1]]).tolist()
        super().__init__(dataset, shuffle=shuffle, seed=seed)
        # the position runs over epochs of sum(num_per_epoch) samples
        self.size = sum(self.num_per_epoch)

    def _counts(self, dataset_size, ratio_mode, weights, epoch_size) -> List[int]:
        name, n = type(self).__name__, len(self.source_sizes)
        if (dataset_size is None) == (weights is None):
            raise ValueError(f'{name}: give either dataset_size or weights')
        if weights is not None:
            if len(weights) != n or not all(float(w) >= 0 for w in weights) \
                    or not sum(weights) > 0:
                raise ValueError(f'{name}: weights must be {n} numbers >= 0 with a '
                                 f'positive sum, got {list(weights)}')
            total = sum(self.source_sizes) if epoch_size is None else int(epoch_size)
            counts = counts_from_weights(weights, total)
        else:
            if len(dataset_size) != n:
                raise ValueError(f'{name}: dataset_size has {len(dataset_size)} entries '
                                 f'for {n} sources')
            counts = []
            for i, (size, length) in enumerate(zip(dataset_size, self.source_sizes)):
                if size == -1:
                    counts.append(length)
                    continue
                count = int(size * length) if ratio_mode else size
                if count != int(count) or count < 0:
                    raise ValueError(f'{name}: dataset_size[{i}] must be -1 or a '
                                     f'count >= 0, got {size}')
                counts.append(int(count))
        for i, (count, length) in enumerate(zip(counts, self.source_sizes)):
            if count and not length:
                raise ValueError(f'{name}: source {i} is empty but should give {count} '
                                 'samples per epoch')
        if not sum(counts):
            raise ValueError(f'{name}: an epoch would have no samples ({counts})')
        return counts

    def _cycle(self, source: int, cycle: int) -> np.ndarray:
        n = self.source_sizes[source]
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, SEED_SOURCE_CYCLE, source,
                                      cycle]).permutation(n)

    def source_epoch(self, source: int, epoch: int) -> np.ndarray:
        """Local indices of ``source`` drawn in ``epoch`` (int64 [num_per_epoch[i]])."""
        m, n = self.num_per_epoch[source], self.source_sizes[source]
        if m == 0:
            return np.zeros(0, dtype=np.int64)
        start, stop = epoch * m, (epoch + 1) * m
        first, last = start // n, (stop - 1) // n
        stream = np.concatenate([self._cycle(source, c) for c in range(first, last + 1)])
        return stream[start - first * n:stop - first * n]

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The global order of epoch ``epoch``: indices into the ``ConcatDataset``
        (int64 [sum(num_per_epoch)])."""
        order = np.concatenate([self.source_epoch(i, epoch) + self.offsets[i]
                                for i in range(len(self.source_sizes))])
        if self.shuffle:
            rng = np.random.default_rng([self.seed, SEED_EPOCH_ORDER, epoch])
            order = order[rng.permutation(len(order))]
        return torch.from_numpy(order.astype(np.int64))

    def state_dict(self, num_consumed: int) -> dict:
        """The state after ``num_consumed`` indices per rank (plain Python values)."""
        return dict(super().state_dict(num_consumed), source_sizes=list(self.source_sizes),
                    num_per_epoch=list(self.num_per_epoch))
