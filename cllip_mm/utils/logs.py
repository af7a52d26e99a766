# Copyright (c) cllip_mm contributors. All rights reserved.
"""Read what MMEngine's ``LocalVisBackend`` logged (``<work_dir>/<run>/vis_data/scalars.json``)."""
import glob
import json
import os.path as osp
from typing import Dict, List


def find_scalar_logs(work_dir: str) -> List[str]:
    """All ``scalars.json`` files of ``work_dir``, oldest run first (a resumed
    training writes one per run)."""
    return sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))


def load_scalars(work_dir: str) -> List[Dict]:
    """Every logged record of every run of ``work_dir``, in order.

    Raises:
        FileNotFoundError: If ``work_dir`` has no ``scalars.json``.
    """
    files = find_scalar_logs(work_dir)
    if not files:
        raise FileNotFoundError(f'no */vis_data/scalars.json under {work_dir!r}')
    records = []
    for path in files:
        with open(path) as f:
            for line_no, line in enumerate(f, 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f'{path}:{line_no}: not JSON ({e})') from e
    return records


def last_metrics(work_dir: str, key: str = 'region_cls/top1') -> Dict:
    """The last record holding ``key`` (the final validation of a training)."""
    hits = [r for r in load_scalars(work_dir) if key in r]
    if not hits:
        raise KeyError(f'no record with {key!r} in the logs of {work_dir!r}')
    return hits[-1]


def train_curve(work_dir: str, key: str) -> List[tuple]:
    """(step, value) pairs of a training scalar such as ``loss_region``. When a
    resumed run logs a step again, the later value wins."""
    points = {r['step']: r[key] for r in load_scalars(work_dir) if key in r and 'step' in r}
    return sorted(points.items())


def test_metrics(work_dir: str) -> Dict:
    """The metrics of the latest ``tools/test.py`` run in ``work_dir``: MMEngine's
    ``LoggerHook`` dumps them to ``<work_dir>/<timestamp>/<timestamp>.json``.

    Raises:
        FileNotFoundError: If ``work_dir`` holds no such file.
    """
    files = sorted(p for p in glob.glob(osp.join(work_dir, '*', '*.json'))
                   if osp.basename(osp.dirname(p)) == osp.splitext(osp.basename(p))[0])
    if not files:
        raise FileNotFoundError(f'no <timestamp>/<timestamp>.json of a test run under {work_dir!r}')
    with open(files[-1]) as f:
        return json.load(f)
