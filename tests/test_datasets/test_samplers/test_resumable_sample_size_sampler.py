# Copyright (c) cllip_mm contributors. All rights reserved.
"""Source mixing (ResumableSampleSizeSampler): exact per-epoch counts, weights,
resume from any position equal to the uninterrupted stream."""
import itertools
from collections import Counter

import numpy as np
import pytest

from cllip_mm.datasets import ResumableSampleSizeSampler
from cllip_mm.datasets.samplers import counts_from_weights


class _Concat:
    """The part of a ConcatDataset the sampler uses: ``datasets`` and ``len``."""

    def __init__(self, *lengths):
        self.datasets = [list(range(n)) for n in lengths]

    def __len__(self):
        return sum(map(len, self.datasets))


def _sampler(lengths=(10, 7, 4), rank=0, world_size=1, **kwargs):
    kwargs.setdefault('dataset_size', [5, -1, 12])
    s = ResumableSampleSizeSampler(_Concat(*lengths), seed=kwargs.pop('seed', 3), **kwargs)
    s.rank, s.world_size = rank, world_size
    return s


def _take(sampler, k):
    return list(itertools.islice(iter(sampler), k))


def _source(index, lengths=(10, 7, 4)):
    """(source, local index) of a ConcatDataset index."""
    ends = np.cumsum(lengths)
    s = int(np.searchsorted(ends, index, side='right'))
    return s, index - (ends[s - 1] if s else 0)


def test_exact_per_epoch_counts_and_cycles():
    s = _sampler()
    assert s.num_per_epoch == [5, 7, 12] and len(s) == 24
    stream = _take(s, 24 * 4)
    epochs = [[_source(i) for i in stream[24 * e:24 * (e + 1)]] for e in range(4)]
    for e, epoch in enumerate(epochs):
        per_source = Counter(src for src, _ in epoch)
        assert per_source == {0: 5, 1: 7, 2: 12}, e  # exact counts, every epoch
        # -1: the whole source, each sample once
        assert sorted(i for src, i in epoch if src == 1) == list(range(7))
        # 12 of a 4-sample source: up-sampled, each sample 3 times
        assert Counter(i for src, i in epoch if src == 2) == {i: 3 for i in range(4)}
    # 5 of 10 per epoch: two epochs make one cycle, every sample once
    for e in (0, 2):
        both = [i for ep in epochs[e:e + 2] for src, i in ep if src == 0]
        assert sorted(both) == list(range(10)), e
    # each epoch has its own order, also of the sources
    assert [src for src, _ in epochs[0]] != [src for src, _ in epochs[1]]
    # without shuffling: each source's next indices, sources in order
    plain = _take(_sampler(shuffle=False), 24)
    assert plain == [0, 1, 2, 3, 4] + list(range(10, 17)) + [17, 18, 19, 20] * 3


def test_ratio_mode_and_weights():
    assert _sampler(dataset_size=[0.5, 1.0, 0.25], ratio_mode=True).num_per_epoch == [5, 7, 1]
    assert counts_from_weights([1, 1, 1], 10) == [4, 3, 3]
    assert counts_from_weights([4, 1], 3) == [2, 1]  # the larger remainder gets it
    for weights, total in (([3, 1], 100), ([0.2, 0.5, 0.3], 7), ([1, 0], 5)):
        counts = counts_from_weights(weights, total)
        assert sum(counts) == total
        quota = total * np.array(weights) / sum(weights)
        assert np.all(np.abs(np.array(counts) - quota) < 1), (weights, counts)
    s = _sampler(lengths=(30, 500), dataset_size=None, weights=[3, 1], epoch_size=100)
    assert s.num_per_epoch == [75, 25]
    # a window that is not a whole epoch still follows the weights, on every rank
    for rank in range(2):
        window = _take(_sampler(lengths=(30, 500), rank=rank, world_size=2,
                                dataset_size=None, weights=[3, 1], epoch_size=100), 400)
        share = np.mean([i < 30 for i in window])
        assert abs(share - 0.75) < 0.05, (rank, share)
    # the default epoch is the total length
    assert _sampler(lengths=(30, 10), dataset_size=None, weights=[1, 1]).num_per_epoch == \
        [20, 20]


@pytest.mark.parametrize('world_size', [1, 2, 3])
def test_resume_anywhere_equals_the_uninterrupted_stream(world_size):
    streams = [_take(_sampler(rank=r, world_size=world_size), 60) for r in range(world_size)]
    merged = [streams[i % world_size][i // world_size] for i in range(60 * world_size)]
    for e in range(2):  # the ranks together draw each epoch's exact counts
        assert Counter(_source(i)[0] for i in merged[24 * e:24 * (e + 1)]) == \
            {0: 5, 1: 7, 2: 12}
    for r in range(world_size):
        for k in (1, 13, 24, 47):
            s = _sampler(rank=r, world_size=world_size, seed=99)  # the state's seed wins
            s.load_state_dict(_sampler(rank=r, world_size=world_size).state_dict(k))
            assert _take(s, 60 - k) == streams[r][k:], (r, k)


def test_state_and_bad_arguments():
    state = _sampler().state_dict(30)
    assert state['type'] == 'ResumableSampleSizeSampler' and state['epoch'] == 1
    assert state['num_per_epoch'] == [5, 7, 12] and state['source_sizes'] == [10, 7, 4]
    with pytest.raises(ValueError, match='num_per_epoch'):
        _sampler(dataset_size=[6, -1, 11]).load_state_dict(state)
    with pytest.raises(ValueError, match='source_sizes'):
        _sampler(lengths=(10, 8, 3), dataset_size=[5, 6, 13]).load_state_dict(state)
    with pytest.raises(ValueError, match='either dataset_size or weights'):
        _sampler(weights=[1, 1, 1])
    with pytest.raises(ValueError, match='3 entries for 2 sources'):
        _sampler(lengths=(4, 4))
    with pytest.raises(ValueError, match=r'dataset_size\[1\]'):
        _sampler(dataset_size=[1, 2.5, 3])
    with pytest.raises(ValueError, match='source 1 is empty'):
        _sampler(lengths=(3, 0, 2), dataset_size=[1, 2, 3])
    with pytest.raises(TypeError, match='ConcatDataset'):
        ResumableSampleSizeSampler(list(range(5)), dataset_size=[1])
