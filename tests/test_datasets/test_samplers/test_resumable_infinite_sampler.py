# Copyright (c) cllip_mm contributors. All rights reserved.
import itertools

import pytest
import torch

from cllip_mm.datasets import ResumableInfiniteSampler


def _sampler(n=10, rank=0, world_size=1, **kwargs):
    s = ResumableInfiniteSampler(list(range(n)), seed=kwargs.pop('seed', 3), **kwargs)
    s.rank, s.world_size = rank, world_size
    return s


def _take(sampler, k):
    return list(itertools.islice(iter(sampler), k))


def test_stream_is_seeded_epochs():
    s = _sampler(10)
    stream = _take(s, 30)
    for e in range(3):
        g = torch.Generator().manual_seed(3 + e)
        assert stream[10 * e:10 * (e + 1)] == torch.randperm(10, generator=g).tolist()
    assert stream[:10] != stream[10:20]  # each epoch has its own order
    assert _take(_sampler(10, shuffle=False), 15) == list(range(10)) + list(range(5))


@pytest.mark.parametrize('world_size', [1, 3, 4])
def test_start_anywhere_equals_the_uninterrupted_stream(world_size):
    n = 10
    streams = [_take(_sampler(n, r, world_size), 40) for r in range(world_size)]
    # ranks interleave the global stream: every epoch is covered exactly once
    merged = [streams[i % world_size][i // world_size] for i in range(40 * world_size)]
    for e in range(4):
        assert sorted(merged[e * n:(e + 1) * n]) == list(range(n))
    for r in range(world_size):
        for k in (0, 1, 7, 10, 23):
            s = _sampler(n, r, world_size)
            s.set_start(k)
            assert _take(s, 40 - k) == streams[r][k:], (r, k)


def test_state_dict_roundtrip_and_mismatch():
    s = _sampler(10)
    state = s.state_dict(num_consumed=13)
    assert state == dict(type='ResumableInfiniteSampler', seed=3, shuffle=True, size=10,
                         world_size=1, num_consumed=13, epoch=1)
    other = _sampler(10, seed=99)
    other.load_state_dict(state)
    assert other.seed == 3 and _take(other, 5) == _take(_sampler(10), 18)[13:]
    with pytest.raises(ValueError, match='size=10'):
        _sampler(11).load_state_dict(state)
    with pytest.raises(ValueError, match='world_size=1'):
        _sampler(10, 0, 2).load_state_dict(state)
    with pytest.raises(ValueError, match='empty'):
        ResumableInfiniteSampler([], seed=0)
