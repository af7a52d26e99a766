"""tools/run_demo.py end to end on a small set: data, both trainings, table, JSON, PNG."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

# over ~30 s on 2 cores: left out of the fast subset (-m "not slow")
pytestmark = pytest.mark.slow

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_run_demo_prints_cloc_and_clip_side_by_side(tmp_path):
    data_root, work_dir = str(tmp_path / 'data'), str(tmp_path / 'work')
    fast = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'train_dataloader.batch_size=8',
            'val_dataloader.batch_size=16']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        fast += [f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools/run_demo.py'), '--data-root', data_root, '--work-dir',
         work_dir, '--num-train', '32', '--num-val', '16', '--data-seed', '5', '--shifts', 'restyled',
         '--num-shift', '8', '--cfg-options', *fast],
        env=dict(os.environ, OMP_NUM_THREADS='1'), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '2 models at a time, 1 thread(s) each' in proc.stdout
    table = proc.stdout[proc.stdout.index('metric (val split'):]
    header, *rows = table.splitlines()
    assert header.split()[-2:] == ['CLOC', 'CLIP']
    assert any(r.startswith('region classification top-1') for r in rows)
    with open(osp.join(work_dir, 'summary.json')) as f:
        summary = json.load(f)
    cloc, clip = summary['results']['CLOC'], summary['results']['CLIP']
    assert 0 <= cloc['region_cls/top1'] <= 1 and 0 <= clip['region_cls/top1'] <= 1
    assert summary['region_top1_margin'] == cloc['region_cls/top1'] - clip['region_cls/top1']
    assert cloc['grounding/acc@0.5'] is not None and clip['grounding/acc@0.5'] is None
    # Each final checkpoint is also evaluated on the shifted set (tools/test.py).
    assert any(r.startswith('restyled: region top-1') for r in rows)
    assert 0 <= cloc['shift/restyled/region_cls/top1'] <= 1 and 0 <= clip['shift/restyled/region_cls/top1'] <= 1
    assert cloc['shift/restyled/grounding/acc@0.5'] is not None
    assert summary['restyled_region_top1_margin'] == (cloc['shift/restyled/region_cls/top1']
                                                      - clip['shift/restyled/region_cls/top1'])
    with open(osp.join(data_root, 'shifts', 'restyled', 'annotations', 'val.jsonl')) as f:
        assert len(f.readlines()) == 8
    assert osp.getsize(osp.join(work_dir, 'curves.png')) > 1000
    # The two models trained at once (one per core of the 2 the test allows), each logging to a file.
    for name in ('cloc', 'clip'):
        with open(osp.join(work_dir, f'{name}.log')) as f:
            log = f.read()
        assert 'Saving checkpoint at 2 iterations' in log and 'tools/test.py' in log
    assert osp.exists(osp.join(data_root, 'tokenizer', 'tokenizer.json'))


def test_run_demo_stops_the_other_model_when_one_fails(tmp_path):
    """CLOC's config is missing: the error names its log at once, and CLIP (1200 iterations,
    many minutes) is stopped rather than run to the end (else the timeout fails the test)."""
    data_root, work_dir = str(tmp_path / 'data'), str(tmp_path / 'work')
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools/run_demo.py'), '--data-root', data_root, '--work-dir',
         work_dir, '--num-train', '16', '--num-val', '8', '--shifts', 'restyled', '--num-shift', '4',
         '--config', f'CLOC={tmp_path / "missing.py"}', '--cfg-options',
         'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False'],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0
    assert f'its output is in {osp.join(work_dir, "cloc.log")}' in proc.stderr
    assert 'missing.py' in proc.stderr  # the log's tail, printed
    assert not osp.exists(osp.join(work_dir, 'clip', 'last_checkpoint'))
    assert not osp.exists(osp.join(work_dir, 'summary.json'))
