# Copyright (c) cllip_mm contributors. All rights reserved.
"""Tar shards: writer, brace expansion, RegionTextShardStream splitting, modes, bad
samples and resume."""
import importlib.util
import io
import itertools
import json
import os.path as osp
import tarfile
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from cllip_mm.datasets.region_text_stream import RegionTextShardStream
from cllip_mm.datasets.tar_shards import ShardWriter, expand_shards, iter_tar_samples

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tool():
    spec = importlib.util.spec_from_file_location(
        'region_text2shards', osp.join(REPO, 'tools/dataset_converters/region_text2shards.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def shards(tiny_region_set, tmp_path_factory):
    """The 48 training images of the tiny set in 8 shards of 6."""
    out = tmp_path_factory.mktemp('shards')
    summary = _tool().convert(tiny_region_set, 'annotations/train.jsonl',
                              str(out / 'train-%05d.tar'), samples_per_shard=6)
    assert len(summary['shards']) == 8 and summary['samples'] == 48
    return str(out / 'train-{00000..00007}.tar')


def _stream(sources, rank=0, world_size=1, **kwargs):
    ds = RegionTextShardStream(sources, seed=kwargs.pop('seed', 0), **kwargs)
    ds.rank, ds.world_size = rank, world_size
    return ds


def _as_list(batch):
    return batch


def _samples(loader, n):
    """(sample_idx, epoch, state) of the first n samples of a loader of batches."""
    out = []
    for batch in loader:
        for sample in batch:
            state = json.loads(sample['_stream_state'])
            out.append((sample['sample_idx'], state['sources'][0][0], state))
        if len(out) >= n:
            return out[:n]


def test_expand_shards_and_writer_layout(shards, tiny_region_set):
    assert expand_shards('a/{000..002}.tar') == ['a/000.tar', 'a/001.tar', 'a/002.tar']
    assert expand_shards(['{a,b}-{1..2}.tar'], root='r') == [
        'r/a-1.tar', 'r/a-2.tar', 'r/b-1.tar', 'r/b-2.tar']
    paths = expand_shards(shards)
    samples = list(iter_tar_samples(paths[1]))
    assert [k for k, *_ in samples] == [f'{i:09d}' for i in range(6, 12)]
    key, files, start, end = samples[0]
    assert sorted(files) == ['jpg', 'json']
    record = json.loads(files['json'])
    assert record['image'] == f'{key}.jpg' and record['regions'][0]['phrase']
    first = json.loads(open(osp.join(tiny_region_set, 'annotations/train.jsonl'))
                       .readlines()[6])
    assert record['caption'] == first['caption']
    # a reader starting at a sample's offset sees the rest of the shard
    assert [k for k, *_ in iter_tar_samples(paths[1], samples[3][2])] == [
        k for k, *_ in samples[3:]]


def test_epoch_exact_two_ranks_two_workers(shards):
    seen = {}
    for rank in range(2):
        ds = _stream(shards, rank, 2, block_size=4)
        loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=_as_list)
        # 4 readers x 12 samples per epoch: 60 samples per rank reach epoch 2
        seen[rank] = _samples(loader, 60)
    everyone = seen[0] + seen[1]
    expected = sorted(f'train-{s:05d}.tar/{i:09d}' for s in range(8)
                      for i in range(6 * s, 6 * s + 6))
    orders = []
    for epoch in range(2):
        ids = [s for s, e, _ in everyone if e == epoch]
        assert sorted(ids) == expected, epoch  # every sample exactly once per epoch
        orders.append([s for s, e, _ in seen[0] if e == epoch])
    assert orders[0] != orders[1]  # reshuffled
    # the ranks read disjoint shards within an epoch
    shards_of = [{s.split('/')[0] for s, e, _ in seen[r] if e == 0} for r in range(2)]
    assert not shards_of[0] & shards_of[1]


def test_resampled_mixes_sources_by_weight(shards):
    paths = expand_shards(shards)
    ds = _stream([dict(shards=paths[:4], weight=3.0), dict(shards=paths[4:], weight=1.0)],
                 mode='resampled', block_size=8)
    ids = [r['sample_idx'] for r in itertools.islice(iter(ds), 800)]
    from_first = np.mean([int(s[6:11]) < 4 for s in ids])
    assert abs(from_first - 0.75) < 0.05, from_first
    assert {s[:11] for s in ids} == {f'train-{i:05d}' for i in range(8)}  # all shards
    # resampled streams never end, even with fewer shards than readers
    assert len(list(itertools.islice(iter(_stream(paths[:1], mode='resampled')), 20))) == 20
    with pytest.raises(ValueError, match='fewer than the 2 readers'):
        next(iter(_stream(paths[:1], 0, 2)))


def test_resume_from_any_sample_state(shards):
    ds = _stream(shards, block_size=5)
    first = list(itertools.islice(iter(ds), 30))
    for k in (0, 3, 5, 13, 29):
        state = json.loads(first[k]['_stream_state'])
        resumed = _stream(shards, block_size=5, seed=99)
        resumed.load_state_dict(dict(states={'0': state}, num_batches=k + 1, num_workers=1,
                                     world_size=1, seed=0))
        again = [r['sample_idx'] for r in itertools.islice(iter(resumed), 30 - k - 1)]
        assert again == [r['sample_idx'] for r in first[k + 1:]], k


def _jpeg(w, h):
    buf = io.BytesIO()
    Image.new('RGB', (w, h), (200, 10, 10)).save(buf, format='JPEG')
    return buf.getvalue()


def test_bad_samples_are_counted_not_fatal(tmp_path, monkeypatch):
    import cllip_mm.datasets.region_text_stream as stream_module
    logs = []
    monkeypatch.setattr(stream_module, 'print_log', lambda msg, **kw: logs.append(msg))
    good = dict(caption='a red box', width=32, height=24,
                regions=[dict(bbox=[1, 1, 10, 10], phrase='red box')])
    with ShardWriter(str(tmp_path / 'bad-%d.tar'), max_samples=100) as w:
        w.write('ok1', dict(jpg=_jpeg(32, 24), json=good))
        w.write('corrupt', dict(jpg=b'not a jpeg', json=good))
        w.write('badjson', dict(jpg=_jpeg(32, 24), json=b'{"caption": '))
        w.write('nojson', dict(jpg=_jpeg(32, 24)))
        w.write('size', dict(jpg=_jpeg(40, 24), json=good))
        w.write('outside', dict(jpg=_jpeg(32, 24), json=dict(
            good, regions=[dict(bbox=[1, 1, 90, 10], phrase='x')])))
        w.write('nocaption', dict(jpg=_jpeg(32, 24), json=dict(good, caption=None)))
        # GRIT (img2dataset) json: normalised ref_exps
        w.write('grit', dict(jpg=_jpeg(32, 24), json=dict(
            caption='A red box', width=32, height=24, key='grit',
            ref_exps=[[0, 9, 0.0, 0.0, 0.5, 0.5, 0.9]])))
        # JSON in UTF-16 (with its BOM) and UTF-8 with a BOM: read as json.loads reads
        # bytes (the stream decodes UTF-8 text first, and falls back to that)
        w.write('utf16', dict(jpg=_jpeg(32, 24), json=json.dumps(good).encode('utf-16')))
        w.write('bom', dict(jpg=_jpeg(32, 24),
                            json=b'\xef\xbb\xbf' + json.dumps(good).encode('utf-8')))
    # a truncated second shard: its readable samples count, the rest is skipped
    with ShardWriter(str(tmp_path / 'cut-%d.tar')) as w:
        for i in range(3):
            w.write(f'c{i}', dict(jpg=_jpeg(32, 24), json=good))
    data = open(tmp_path / 'cut-0.tar', 'rb').read()
    open(tmp_path / 'cut-0.tar', 'wb').write(data[:len(data) // 2])

    ds = _stream([str(tmp_path / 'bad-0.tar'), str(tmp_path / 'cut-0.tar')],
                 shuffle=False, block_size=4)
    out = []
    for r in iter(ds):
        out.append(r)
        if len(out) == 8:
            break
    keys = [r['sample_idx'].split('/')[1] for r in out]
    # a bad region only drops the region; the shards' order is ok1, ..., then cut-0.tar
    assert keys[:5] == ['ok1', 'outside', 'grit', 'utf16', 'bom'] and set(keys[5:]) <= {
        'c0', 'c1', 'ok1', 'outside', 'grit', 'utf16', 'bom'}
    assert out[3]['caption'] == out[4]['caption'] == 'a red box'
    assert out[1]['gt_phrases'] == []
    grit = out[2]
    np.testing.assert_allclose(grit['gt_bboxes'], [[0, 0, 16, 12]])
    assert grit['gt_phrases'] == ['A red box'] and grit['gt_scores'][0] == pytest.approx(0.9)
    counts = dict(ds.skip_counts)
    assert counts['unreadable image'] >= 1 and counts['invalid JSON'] >= 1
    assert counts['missing image or json'] >= 1 and counts['image size mismatch'] >= 1
    assert counts['bad region: box outside image'] >= 1
    assert counts['bad record: wrong type'] >= 1  # caption None
    assert counts['corrupt shard'] >= 1
    # every skip is logged naming the shard, the sample key and the field
    bad = str(tmp_path / 'bad-0.tar')
    for key, field in [('outside', 'regions[0].bbox'), ('nocaption', 'caption'),
                       ('badjson', 'json'), ('corrupt', 'jpg'), ('size', 'width`/`height')]:
        assert any(f'{bad}:{key}' in m and f'`{field}`' in m for m in logs), (key, logs)
    # the record checks keep no list of bad records (it would grow without end)
    assert not any(isinstance(v, list) for v in vars(ds.parser).values())


def _shard_of(sample_idx):
    return sample_idx.split('/')[0]


@pytest.mark.slow  # over ~30 s on 2 idle cores: out of the fast subset
def test_two_processes_two_workers_read_each_sample_once_per_epoch(tiny_region_set,
                                                                   tmp_path):
    """Real ranks: 2 spawned processes in a gloo group x 2 DataLoader workers each.
    10 shards of 5, 5, ..., 3 samples: the 4 readers get 3, 3, 2, 2 shards per epoch."""
    from dist_stream_reader import run_ranks
    summary = _tool().convert(tiny_region_set, 'annotations/train.jsonl',
                              str(tmp_path / 'train-%05d.tar'), samples_per_shard=5)
    assert len(summary['shards']) == 10
    dataset = dict(type='RegionTextShardStream', sources=summary['shards'], mode='epoch',
                   block_size=4, seed=None)  # the seed comes from rank 0
    (out_dir := tmp_path / 'out').mkdir()
    # 24 samples per worker: every worker (at most 15 a epoch) is into its epoch 1
    ranks = run_ranks(2, str(out_dir), dataset, num_samples=48)
    assert ranks[0]['seed'] == ranks[1]['seed']
    samples = ranks[0]['samples'] + ranks[1]['samples']
    assert {st['worker'] for _, st in ranks[0]['samples']} == {0, 1}
    assert {st['worker'] for _, st in ranks[1]['samples']} == {2, 3}
    expected = sorted(f'train-{i // 5:05d}.tar/{i:09d}' for i in range(48))
    epoch = [[s for s, st in samples if st['sources'][0][0] == e] for e in (0, 1)]
    assert sorted(epoch[0]) == expected  # every sample exactly once in epoch 0
    assert len(set(epoch[1])) == len(epoch[1]) > 0  # no repeat in epoch 1 so far
    for e in (0, 1):  # each shard is read by one reader per epoch
        readers = {}
        for s, st in samples:
            if st['sources'][0][0] == e:
                readers.setdefault(_shard_of(s), set()).add(st['worker'])
        assert all(len(r) == 1 for r in readers.values()), (e, readers)


@pytest.mark.slow  # over ~30 s on 2 idle cores: out of the fast subset
def test_two_processes_resampled_cover_shards_by_weight(shards, tmp_path):
    """Resampled mode, 2 processes x 2 workers: source A (4 shards, weight 3) and B (4
    shards, weight 1); each shard of A should give 3/16 of the samples, of B 1/16."""
    from dist_stream_reader import run_ranks
    paths = expand_shards(shards)
    dataset = dict(type='RegionTextShardStream', mode='resampled', block_size=6, seed=5,
                   sources=[dict(shards=paths[:4], weight=3.0),
                            dict(shards=paths[4:], weight=1.0)])
    (out_dir := tmp_path / 'out').mkdir()
    ranks = run_ranks(2, str(out_dir), dataset, num_samples=1200, batch_size=20)
    samples = [s for r in ranks for s, _ in r['samples']]
    counts = Counter(_shard_of(s) for s in samples)
    share_a = sum(counts[f'train-{i:05d}.tar'] for i in range(4)) / len(samples)
    assert abs(share_a - 0.75) < 0.03, share_a
    for i in range(8):
        expected = len(samples) * (3 if i < 4 else 1) / 16
        assert abs(counts[f'train-{i:05d}.tar'] / expected - 1) < 0.3, (i, counts)
    # the readers draw their own shards: the four sequences differ
    per_reader = {}
    for r in ranks:
        for s, st in r['samples']:
            per_reader.setdefault(st['worker'], []).append(_shard_of(s))
    assert len(per_reader) == 4
    assert len({tuple(v[:60]) for v in per_reader.values()}) == 4


@pytest.mark.parametrize('fmt', [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT,
                                 tarfile.PAX_FORMAT])
def test_tar_samples_from_any_offset(tmp_path, fmt):
    """iter_tar_samples reads ustar name prefixes, GNU long names and pax headers,
    skips directories, reads data of any length, and starts again at any sample's
    offset; a corrupt header or a cut shard is a ReadError, not a silent end."""
    path = str(tmp_path / 'x.tar')
    deep = 'd' * 60 + '/' + 'e' * 60  # > 100 characters: ustar splits it at the '/'
    names = [f'{deep}/k0.jpg', f'{deep}/k0.json', 'k1.jpg', 'k1.json']
    if fmt != tarfile.USTAR_FORMAT:  # a name ustar cannot hold
        names += ['k' * 120 + '.jpg', 'k' * 120 + '.json']
    written = {}
    with tarfile.open(path, 'w', format=fmt) as tar:
        dir_info = tarfile.TarInfo('a_dir')
        dir_info.type = tarfile.DIRTYPE
        tar.addfile(dir_info)
        for i, name in enumerate(names):
            data = bytes(range(256)) * i + b'x' * (i * 37)  # not multiples of 512
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if fmt == tarfile.PAX_FORMAT:
                info.mtime = 1.5  # a pax header per member, as webdataset writes
            tar.addfile(info, io.BytesIO(data))
            written[name] = data
    samples = list(iter_tar_samples(path))
    keys = [f'{deep}/k0', 'k1', 'k' * 120][:len(names) // 2]
    assert [k for k, *_ in samples] == keys
    for key, files, _, _ in samples:
        assert files == {ext: written[f'{key}.{ext}'] for ext in ('jpg', 'json')}
    size = osp.getsize(path)
    assert samples[-1][3] == size
    for i, (_, _, start, end) in enumerate(samples):
        assert [s[0] for s in iter_tar_samples(path, start)] == keys[i:]
        assert end == (samples[i + 1][2] if i + 1 < len(samples) else size)
    with tarfile.open(path) as tar:
        last = tar.getmembers()[-1]
    data = open(path, 'rb').read()
    # a flipped byte in the second sample's first header
    flipped = bytearray(data)
    flipped[samples[1][2] + 10] ^= 0xFF
    open(path, 'wb').write(bytes(flipped))
    with pytest.raises(tarfile.ReadError, match='corrupt'):
        list(iter_tar_samples(path))
    with pytest.raises(tarfile.ReadError, match='corrupt'):  # read from there
        list(iter_tar_samples(path, samples[1][2]))
    # cut inside the last member's data, and inside a header
    for cut in (last.offset_data + last.size // 2, samples[1][2] + 100):
        open(path, 'wb').write(data[:cut])
        with pytest.raises(tarfile.ReadError):
            list(iter_tar_samples(path))


def _source_of(sample_idx):
    return int(sample_idx[6:11]) >= 4  # shards 0-3: source 0, shards 4-7: source 1


def test_samples_per_epoch_mixes_exact_counts(shards):
    """30 + 10 samples per mixing epoch (source 0 has 24 samples: it is up-sampled), on
    one reader and on two dataloader workers; the order changes every epoch."""
    paths = expand_shards(shards)
    sources = [dict(shards=paths[:4], samples_per_epoch=30),
               dict(shards=paths[4:], samples_per_epoch=10)]
    ds = _stream(sources, block_size=4)
    assert ds.samples_per_epoch == [30, 10]
    picks = [_source_of(r['sample_idx']) for r in itertools.islice(iter(ds), 120)]
    for e in range(3):
        assert Counter(picks[40 * e:40 * e + 40]) == {False: 30, True: 10}, e
    assert picks[:40] != picks[40:80]
    loader = DataLoader(_stream(sources, block_size=4), batch_size=4, num_workers=2,
                        collate_fn=_as_list)
    both = [_source_of(r['sample_idx']) for batch in itertools.islice(loader, 20) for r in batch]
    for e in range(2):  # each worker's 20 samples of the epoch arrive as 5 batches of 4
        assert Counter(both[40 * e:40 * e + 40]) == {False: 30, True: 10}, e


def _assert_resumes_as_uninterrupted(sources, after, num=30):
    """A one-reader stream resumed from the state after each sample index in ``after``
    (a different seed passed in, the saved one wins) yields what the uninterrupted stream
    yields next. Returns the uninterrupted stream's first ``num`` samples."""
    first = list(itertools.islice(iter(_stream(sources, block_size=5)), num))
    for k in after:
        resumed = _stream(sources, block_size=5, seed=99)
        resumed.load_state_dict(dict(states={'0': json.loads(first[k]['_stream_state'])},
                                     num_batches=k + 1, num_workers=1, world_size=1, seed=0))
        again = [r['sample_idx'] for r in itertools.islice(iter(resumed), num - k - 1)]
        assert again == [r['sample_idx'] for r in first[k + 1:]], k
    return first


def test_samples_per_epoch_resumes_and_checks_its_arguments(shards):
    paths = expand_shards(shards)
    sources = [dict(shards=paths[:4], samples_per_epoch=7),
               dict(shards=paths[4:], samples_per_epoch=5)]
    _assert_resumes_as_uninterrupted(sources, after=(4, 11, 12, 25))
    with pytest.raises(ValueError, match='for every source or for none'):
        _stream([dict(shards=paths[:4], samples_per_epoch=3), dict(shards=paths[4:])])
    with pytest.raises(ValueError, match='weight or samples_per_epoch, not both'):
        _stream([dict(shards=paths[:4], samples_per_epoch=3, weight=1.0),
                 dict(shards=paths[4:], samples_per_epoch=3)])
    with pytest.raises(ValueError, match='positive integer'):
        _stream([dict(shards=paths[:4], samples_per_epoch=2.5),
                 dict(shards=paths[4:], samples_per_epoch=3)])


def test_weighted_mixing_resumes_across_pick_blocks(shards, monkeypatch):
    """The weighted source picks come in blocks of seeded draws: a resumed reader picks
    as the uninterrupted one, also across block boundaries (blocks of 8 here)."""
    import cllip_mm.datasets.region_text_stream as stream_module
    monkeypatch.setattr(stream_module, 'WEIGHTED_PICK_BLOCK', 8)
    paths = expand_shards(shards)
    sources = [dict(shards=paths[:4], weight=3.0), dict(shards=paths[4:], weight=1.0)]
    first = _assert_resumes_as_uninterrupted(sources, after=(6, 7, 8, 20))
    assert len({_source_of(r['sample_idx']) for r in first}) == 2
