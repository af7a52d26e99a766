# Copyright (c) cllip_mm contributors. All rights reserved.
"""An infinite sampler whose position is a number: resume costs one permutation."""
import itertools
from typing import Iterator, Optional, Sized

import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from cllip_mm.engine.resume import ResumableSampler
from cllip_mm.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class ResumableInfiniteSampler(Sampler, ResumableSampler):
    """Infinite sampler for iteration-based training that can start at any position.

    The global index stream is the concatenation of per-epoch orders ``perm_0, perm_1,
    ...`` of ``range(len(dataset))``, where ``perm_e`` is ``torch.randperm`` with the
    seed ``seed + e`` (or ``arange`` without ``shuffle``); rank ``r`` of ``W`` takes the
    global positions ``r, r + W, r + 2W, ...`` (as mmengine's ``InfiniteSampler``
    slices its stream). Because every epoch has its own seed, the stream can start after
    ``n`` consumed indices per rank at the cost of one permutation, whatever ``n``:
    it is a :class:`~cllip_mm.engine.resume.ResumableSampler`, whose :meth:`state_dict`
    / :meth:`load_state_dict` and :meth:`set_start`
    :class:`~cllip_mm.engine.ResumableIterBasedTrainLoop` uses to resume in O(1)
    instead of replaying every consumed batch.

    Args:
        dataset (Sized): The dataset.
        shuffle (bool): Shuffle each epoch. Defaults to True.
        seed (int, optional): Random seed; None draws one, synchronised across ranks
            (it is saved in checkpoints, so a resumed run keeps the same order).
    """

    def __init__(self, dataset: Sized, shuffle: bool = True,
                 seed: Optional[int] = None) -> None:
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.size = len(dataset)
        if self.size == 0:
            raise ValueError('ResumableInfiniteSampler: the dataset is empty')
        #: Indices of this rank consumed before the next ``__iter__`` starts.
        self.start = 0
        #: State read from a checkpoint, applied by the train loop when it resumes.
        self.pending_state: Optional[dict] = None

    #: state entries that must match between the checkpoint and this sampler
    RESUME_KEYS = ('size', 'world_size', 'shuffle')

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The global order of epoch ``epoch`` (int64 [len(dataset)])."""
        if not self.shuffle:
            return torch.arange(self.size)
        g = torch.Generator()
        g.manual_seed(self.seed + epoch)
        return torch.randperm(self.size, generator=g)

    def __iter__(self) -> Iterator[int]:
        # global position of this rank's next index
        pos = self.start * self.world_size + self.rank
        epoch, offset = divmod(pos, self.size)
        while True:
            order = self.epoch_order(epoch).tolist()
            yield from itertools.islice(order, offset, None, self.world_size)
            # the first position of the next epoch that belongs to this rank
            pos += -(-(self.size - offset) // self.world_size) * self.world_size
            epoch, offset = divmod(pos, self.size)

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        """Unused: the epoch follows from the position."""

    def set_start(self, num_consumed: int) -> None:
        """Start the next ``__iter__`` after ``num_consumed`` indices of this rank."""
        if num_consumed < 0:
            raise ValueError(f'num_consumed must be >= 0, got {num_consumed}')
        self.start = int(num_consumed)

    def state_dict(self, num_consumed: int) -> dict:
        """The state after ``num_consumed`` indices per rank (plain Python values)."""
        return dict(type=type(self).__name__, seed=self.seed, shuffle=self.shuffle,
                    size=self.size, world_size=self.world_size,
                    num_consumed=int(num_consumed),
                    epoch=num_consumed * self.world_size // self.size)

    def load_state_dict(self, state: dict) -> None:
        """Adopt the seed of ``state`` and start after its ``num_consumed`` indices.

        Raises:
            ValueError: If the dataset size, the world size or the shuffle flag
                differ (the stream would not be the same).
        """
        for key in self.RESUME_KEYS:
            if state.get(key) != getattr(self, key):
                raise ValueError(
                    f'{type(self).__name__}: cannot resume a stream with {key}='
                    f'{state.get(key)!r} (checkpoint) as {key}={getattr(self, key)!r}; '
                    f'the sample order would differ')
        self.seed = int(state['seed'])
        self.set_start(state['num_consumed'])
