# Copyright (c) cllip_mm contributors. All rights reserved.
"""Crashed at iteration k and resumed, a run sees the same samples from k + 1 on as an
uninterrupted run, without replaying the consumed batches. (A real SIGKILL of
tools/train.py is tested in tests/test_tools/test_train_cloc_resume.py; here the crash
is an exception, so that the three runs share one process.)"""
import glob
import json
import os.path as osp
from collections import Counter

import pytest
import sample_log_helpers  # noqa: F401 (registers the hooks)
from mmengine.runner import Runner


def _ids(path):
    return {r['iter']: r['ids'] for r in map(json.loads, open(path))}


def _run(cfg, tmp_path, monkeypatch, name, work_dir, crash_after=None, **overrides):
    cfg = cfg.copy()
    cfg.work_dir = str(tmp_path / work_dir)
    cfg.experiment_name = name  # a logger of its own
    cfg.merge_from_dict(overrides)
    log = str(tmp_path / f'{name}.jsonl')
    monkeypatch.setenv('CLLIP_TEST_SAMPLE_LOG', log)
    if crash_after is None:
        monkeypatch.delenv('CLLIP_TEST_CRASH_AFTER_ITER', raising=False)
        Runner.from_cfg(cfg).train()
    else:
        monkeypatch.setenv('CLLIP_TEST_CRASH_AFTER_ITER', str(crash_after))
        with pytest.raises(RuntimeError, match='crash after iteration'):
            Runner.from_cfg(cfg).train()
    text_log = sorted(glob.glob(osp.join(cfg.work_dir, '*', '*.log')))[-1]  # this run's
    return _ids(log), open(text_log).read()


MIX_CONFIG = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__))))), 'configs/_base_/datasets/region_text_mix_224.py')


def _mix_sources(cfg):
    """The mixing of configs/_base_/datasets/region_text_mix_224.py on the tiny set: the
    training file as two sources, 16 + 8 samples per epoch."""
    from mmengine.config import Config
    mix = Config.fromfile(MIX_CONFIG).train_dataloader
    source = cfg.train_dataloader.dataset
    cfg.train_dataloader.dataset = dict(mix.dataset, datasets=[source, source])
    cfg.train_dataloader.sampler = dict(mix.sampler, dataset_size=[16, 8])


@pytest.mark.slow  # over ~30 s on 2 idle cores: out of the fast subset
@pytest.mark.parametrize('sampler', ['ResumableInfiniteSampler', 'ResumableSampleSizeSampler'])
def test_crash_and_resume_sees_the_uninterrupted_samples(make_tiny_cloc_cfg, tmp_path,
                                                         monkeypatch, sampler):
    cfg = make_tiny_cloc_cfg(max_iters=7)  # 7 x 8 samples: crosses the 48-image epoch
    cfg.train_cfg.type = 'ResumableIterBasedTrainLoop'
    cfg.train_dataloader.sampler = dict(type='ResumableInfiniteSampler', shuffle=True)
    if sampler == 'ResumableSampleSizeSampler':
        _mix_sources(cfg)  # epochs of 24 samples: crossed twice
    # a prefetching worker: the resumed loop must drop what it fetched from position 0
    cfg.train_dataloader.update(num_workers=1, persistent_workers=True)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.custom_hooks = [dict(type='SampleIdsLogHook'), dict(type='CrashAfterIterHook')]

    full, _ = _run(cfg, tmp_path, monkeypatch, 'full', 'full')
    crashed, _ = _run(cfg, tmp_path, monkeypatch, 'crashed', 'run', crash_after=5)
    # resume from iter_4.pth with another sampler seed in the config: the checkpoint's
    # sampler state (seed 0, 4 x 8 samples consumed) wins
    resumed, log = _run(cfg, tmp_path, monkeypatch, 'resumed', 'run', resume=True,
                        train_dataloader=dict(sampler=dict(seed=123)))
    assert 'Resumed the sampler at iteration 4 (32 samples per rank consumed)' in log
    assert 'Advance dataloader' not in log  # no replay

    assert sorted(full) == list(range(1, 8))
    assert sorted(crashed) == list(range(1, 6)) and sorted(resumed) == list(range(5, 8))
    assert {i: crashed[i] for i in range(1, 5)} == {i: full[i] for i in range(1, 5)}
    assert resumed == {i: full[i] for i in range(5, 8)}
    if sampler == 'ResumableInfiniteSampler':
        # the first epoch (6 batches of 8 = 48 images) holds every image once
        assert sorted(sum((full[i] for i in range(1, 7)), [])) == list(range(48))
    else:  # 3 batches = one epoch of 16 + 8: the ids repeat only where sources overlap
        epoch = sum((full[i] for i in range(1, 4)), [])
        assert len(epoch) == 24 and max(Counter(epoch).values()) <= 2


@pytest.mark.slow  # over ~30 s on 2 idle cores: out of the fast subset
def test_stream_crash_and_resume_sees_the_uninterrupted_samples(
        make_tiny_cloc_cfg, tiny_region_set, tmp_path, monkeypatch):
    """The same with RegionTextShardStream and 2 dataloader workers; the checkpoint is
    at iteration 3, so the resumed run must start with worker 1's next batch."""
    import importlib.util
    repo = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    spec = importlib.util.spec_from_file_location(
        'region_text2shards', osp.join(repo, 'tools/dataset_converters/region_text2shards.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    shards = tool.convert(tiny_region_set, 'annotations/train.jsonl',
                          str(tmp_path / 'shards' / 'train-%05d.tar'), 6)['shards']

    cfg = make_tiny_cloc_cfg(max_iters=7)
    cfg.train_cfg.type = 'ResumableIterBasedTrainLoop'
    pipeline = cfg.train_dataloader.dataset.pipeline[1:]  # the stream decodes images
    cfg.train_dataloader.update(num_workers=2, persistent_workers=True, sampler=None)
    cfg.train_dataloader.dataset = dict(type='RegionTextShardStream', sources=shards, seed=0,
                                        block_size=5, pipeline=pipeline)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint.interval = 3
    cfg.custom_hooks = [dict(type='SampleIdsLogHook'), dict(type='CrashAfterIterHook')]

    full, _ = _run(cfg, tmp_path, monkeypatch, 'full', 'full')
    crashed, _ = _run(cfg, tmp_path, monkeypatch, 'crashed', 'run', crash_after=4)
    resumed, log = _run(cfg, tmp_path, monkeypatch, 'resumed', 'run', resume=True,
                        train_dataloader=dict(dataset=dict(seed=123)))
    assert 'Resumed the stream at iteration 3 (2 worker states)' in log
    assert sorted(resumed) == list(range(4, 8))
    assert {i: crashed[i] for i in range(1, 4)} == {i: full[i] for i in range(1, 4)}
    assert resumed == {i: full[i] for i in range(4, 8)}
    assert len({s for i in full for s in full[i]}) == 48  # 7 x 8 samples: the whole epoch
