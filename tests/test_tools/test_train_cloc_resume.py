"""tools/train.py on a tiny CLOC: SIGKILL mid-run, rerun with --resume, it continues."""
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

from cllip_mm.utils.logs import load_scalars

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_sigkill_then_resume_continues_from_last_checkpoint(make_tiny_cloc_cfg, tmp_path):
    cfg = make_tiny_cloc_cfg(max_iters=8)
    config = str(tmp_path / 'tiny_cloc.py')
    cfg.dump(config)
    work_dir = cfg.work_dir
    cmd = [sys.executable, osp.join(REPO, 'tools/train.py'), config, '--work-dir', work_dir]
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = osp.join(work_dir, 'last_checkpoint')
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if osp.exists(last) and open(last).read().strip().endswith('iter_4.pth'):
            break
        time.sleep(0.2)
    assert proc.poll() is None, 'training ended before it could be killed'
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not osp.exists(osp.join(work_dir, 'iter_8.pth'))

    resumed = subprocess.run(cmd + ['--resume'], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed' in (resumed.stdout + resumed.stderr).lower()
    assert osp.exists(osp.join(work_dir, 'iter_8.pth'))
    # The second run logged only the iterations after the checkpoint, then validated.
    runs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    assert len(runs) == 2
    steps = [r['step'] for r in load_scalars(work_dir) if 'loss_region' in r]
    second = [json.loads(line)['step'] for line in open(runs[1]) if 'loss_region' in line]
    assert second[0] == 5 and second[-1] == 8, second
    assert steps[-1] == 8
    assert any('region_cls/top1' in r for r in load_scalars(work_dir))
