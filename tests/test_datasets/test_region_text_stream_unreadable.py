# Copyright (c) cllip_mm contributors. All rights reserved.
"""A shard stream none of whose shards can be read (a wrong pattern, a missing mount,
corrupt or empty files) fails in bounded time with an error naming the shards, in both
modes, also when only one dataloader worker's share of the shards is unreadable.

Before the fix, ``mode='epoch'`` went on to the next epoch forever (the test's deadline
turns such a hang into a failure)."""
import contextlib
import io
import signal
import tarfile

import pytest
from PIL import Image
from torch.utils.data import DataLoader

from cllip_mm.datasets.region_text_stream import RegionTextShardStream
from cllip_mm.datasets.tar_shards import ShardWriter

#: seconds a stream may take to fail (it takes well under one; the machine may be busy)
DEADLINE = 60


class DeadlineExceeded(Exception):
    """Not an ``OSError`` (as ``TimeoutError`` is), which the stream catches."""


@contextlib.contextmanager
def deadline(seconds: float, what: str):
    """Raise :class:`DeadlineExceeded` in the main thread if the block runs longer than
    ``seconds`` (SIGALRM: interrupts a pure-Python loop, e.g. a stream cycling epochs)."""
    def expire(signum, frame):
        raise DeadlineExceeded(f'{what} did not end within {seconds} s')
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _jpeg(w=32, h=24):
    buf = io.BytesIO()
    Image.new('RGB', (w, h), (200, 10, 10)).save(buf, format='JPEG')
    return buf.getvalue()


GOOD = dict(caption='a red box', width=32, height=24,
            regions=[dict(bbox=[1, 1, 10, 10], phrase='red box')])


def make(root, kind: str, name: str) -> str:
    """One shard ``root/NAME.tar`` of ``kind``: 'good' (3 samples), 'corrupt' (bytes that
    are not a tar), 'empty' (a tar without members) or 'missing' (no file)."""
    path = str(root / f'{name}.tar')
    if kind == 'good':
        with ShardWriter(str(root / f'{name}-%d.tar')) as w:
            for i in range(3):
                w.write(f'{name}_{i}', dict(jpg=_jpeg(), json=GOOD))
        (root / f'{name}-0.tar').rename(path)
    elif kind == 'corrupt':
        with open(path, 'wb') as f:
            f.write(b'this is not a tar file' * 100)
    elif kind == 'empty':
        tarfile.open(path, 'w').close()
    return path


def first_samples(dataset, n, num_workers=0):
    """The first ``n`` samples of the stream, read directly or by a DataLoader."""
    if num_workers:
        loader = DataLoader(dataset, batch_size=1, num_workers=num_workers, collate_fn=list)
        it = (s for batch in loader for s in batch)
    else:
        it = iter(dataset)
    return [next(it) for _ in range(n)]


@pytest.mark.parametrize('mode', ['epoch', 'resampled'])
@pytest.mark.parametrize('kind', ['missing', 'corrupt', 'empty'])
def test_all_unreadable_fails_naming_the_shards(tmp_path, mode, kind):
    paths = [make(tmp_path, kind, f'shard-{i}') for i in range(3)]
    with deadline(DEADLINE, f'a stream of {kind} shards, mode={mode!r}'):
        with pytest.raises((RuntimeError, FileNotFoundError)) as error:
            ds = RegionTextShardStream(str(tmp_path / 'shard-{0..2}.tar'), mode=mode, seed=0,
                                       block_size=2)
            first_samples(ds, 1)
    message = str(error.value)
    assert 'shard-{0..2}.tar' in message  # the source as given
    assert any(p in message for p in paths), message  # and shards it tried


@pytest.mark.parametrize('kind', ['missing', 'corrupt'])
def test_one_worker_with_an_unreadable_share_fails(tmp_path, kind):
    """Two workers, unshuffled: worker g reads shards g, g + 2. Worker 0's share is
    readable, worker 1's (shards 1 and 3) is not: its first batch never comes, and the
    loader (which returns batches in worker order) would wait for it forever."""
    paths = [make(tmp_path, 'good' if i % 2 == 0 else kind, f'shard-{i}') for i in range(4)]
    ds = RegionTextShardStream(str(tmp_path / 'shard-{0..3}.tar'), mode='epoch',
                               shuffle=False, seed=0, block_size=2)
    with deadline(DEADLINE, f'a stream with one worker of {kind} shards'):
        with pytest.raises(RuntimeError) as error:
            first_samples(ds, 20, num_workers=2)
    message = str(error.value)
    assert paths[1] in message and paths[3] in message, message
    assert paths[0] not in message and paths[2] not in message
    assert 'worker 1' in message


def test_a_few_unreadable_shards_are_skipped(tmp_path):
    """Unreadable shards among readable ones are skipped, not fatal (in both modes)."""
    for i in range(4):
        make(tmp_path, 'corrupt' if i == 1 else 'good', f'shard-{i}')
    for mode in ('epoch', 'resampled'):
        ds = RegionTextShardStream(str(tmp_path / 'shard-{0..3}.tar'), mode=mode, seed=0,
                                   block_size=2)
        with deadline(DEADLINE, f'a partly readable stream, mode={mode!r}'):
            samples = first_samples(ds, 30)  # over three epochs of 9 samples
        assert {s['sample_idx'].split('/')[0] for s in samples} == {
            'shard-0.tar', 'shard-2.tar', 'shard-3.tar'}
        assert ds.skip_counts['corrupt shard'] >= 1
