"""tools/train.py on a tiny CLOC: SIGKILL mid-run, rerun with --resume, it continues."""
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import sys

import pytest

from cllip_mm.utils.logs import load_scalars

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HELPERS = osp.join(REPO, 'tests', 'test_utils')  # toy_model_helpers: ToySigkillHook
SIGKILL_ENV = 'CLLIP_TEST_SIGKILL_AFTER_ITER'


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_sigkill_then_resume_continues_from_last_checkpoint(make_tiny_cloc_cfg, tmp_path):
    cfg = make_tiny_cloc_cfg(max_iters=8)
    cfg.custom_imports = dict(imports=['toy_model_helpers'], allow_failed_imports=False)
    cfg.custom_hooks = [dict(type='ToySigkillHook')]
    config = str(tmp_path / 'tiny_cloc.py')
    cfg.dump(config)
    work_dir = cfg.work_dir
    cmd = [sys.executable, osp.join(REPO, 'tools/train.py'), config, '--work-dir', work_dir]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, HELPERS]), OMP_NUM_THREADS='1')

    # Killed right after iteration 5: the last checkpoint is iter_4 (interval 2).
    killed = subprocess.run(cmd, env=dict(env, **{SIGKILL_ENV: '5'}), capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert open(osp.join(work_dir, 'last_checkpoint')).read().strip().endswith('iter_4.pth')
    assert not osp.exists(osp.join(work_dir, 'iter_6.pth'))

    resumed = subprocess.run(cmd + ['--resume'], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed' in (resumed.stdout + resumed.stderr).lower()
    assert osp.exists(osp.join(work_dir, 'iter_8.pth'))
    # The second run logged only the iterations after the checkpoint, then validated.
    runs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    assert len(runs) == 2
    second = [json.loads(line)['step'] for line in open(runs[1]) if 'loss_region' in line]
    assert second[0] == 5 and second[-1] == 8, second
    assert any('region_cls/top1' in r for r in load_scalars(work_dir))
