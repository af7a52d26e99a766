# Copyright (c) cllip_mm contributors. All rights reserved.
"""The resume contract (cllip_mm.engine.resume): who satisfies it, and that the hook
and the loop find the data through it."""
import json

import pytest
from mmengine.dataset import DefaultSampler, InfiniteSampler
from torch.utils.data import BatchSampler, DataLoader

from cllip_mm.datasets import ResumableInfiniteSampler, ResumableSampleSizeSampler
from cllip_mm.datasets.region_text_stream import RegionTextShardStream
from cllip_mm.engine.hooks.sampler_state_hook import find_train_sampler
from cllip_mm.engine.resume import (
    SAMPLE_STATE_KEY,
    SAMPLER_STATE_KEY,
    STREAM_STATE_KEY,
    ResumableSampler,
    ResumableStream,
    decode_sample_state,
    encode_sample_state,
)


class _Sources:
    datasets = [list(range(5)), list(range(3))]

    def __len__(self):
        return 8


def test_key_strings_are_the_checkpoint_format():
    # existing checkpoints hold these keys: changing one makes them replay on resume
    assert (SAMPLER_STATE_KEY, STREAM_STATE_KEY, SAMPLE_STATE_KEY) == (
        'train_sampler', 'train_stream', '_stream_state')


def test_samplers_and_stream_satisfy_the_protocols(tmp_path):
    data = list(range(10))
    for sampler in (ResumableInfiniteSampler(data, seed=0),
                    ResumableSampleSizeSampler(_Sources(), dataset_size=[-1, 2], seed=0)):
        assert isinstance(sampler, ResumableSampler)
    for other in (InfiniteSampler(data, seed=0), DefaultSampler(data, seed=0), data):
        assert not isinstance(other, ResumableSampler)
    shard = tmp_path / 'a.tar'
    shard.write_bytes(bytes(10240))
    stream = RegionTextShardStream(str(shard), seed=0)
    assert isinstance(stream, ResumableStream) and not isinstance(stream, ResumableSampler)


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_find_train_sampler_only_under_a_plain_batch_sampler():
    data = list(range(10))
    sampler = ResumableInfiniteSampler(data, seed=0)
    assert find_train_sampler(DataLoader(data, sampler=sampler, batch_size=2)) is sampler
    batches = BatchSampler(sampler, 2, drop_last=False)
    assert find_train_sampler(DataLoader(data, batch_sampler=batches)) is sampler

    class Buffering(BatchSampler):
        pass
    assert find_train_sampler(DataLoader(data, batch_sampler=Buffering(sampler, 2, False))) \
        is None
    assert find_train_sampler(DataLoader(data, sampler=InfiniteSampler(data),
                                         batch_size=2)) is None


@pytest.mark.parametrize('state', [dict(worker=3, n=7, sources=[None, [0, 1, 512, 2, 4]])])
def test_sample_state_is_json(state):
    value = encode_sample_state(state)
    assert isinstance(value, str) and json.loads(value) == state
    assert decode_sample_state(value) == state
