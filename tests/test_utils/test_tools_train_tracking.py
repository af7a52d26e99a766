# Copyright (c) cllip_mm contributors. All rights reserved.
"""tools/train.py --tracking {none,tensorboard,wandb}: MMEngine's TensorBoard / W&B
visualisation backends next to the local one.

The config the switch produces (and that it builds into MMEngine's Visualizer), the
message when the tracker's package is missing, and a 4-iteration toy training that writes
TensorBoard event files / an offline W&B run where the package is installed (neither
package is a dependency of cllip_mm: those two tests skip without it).
"""
import glob
import importlib
import importlib.util
import os
import os.path as osp
import subprocess
import sys
import types

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.visualization import (
    LocalVisBackend,
    TensorboardVisBackend,
    Visualizer,
    WandbVisBackend,
)
from toy_model_helpers import HELPERS_DIR, toy_cfg

from cllip_mm.registry import VISUALIZERS
from cllip_mm.utils import register_all_modules

REPO = osp.dirname(osp.dirname(HELPERS_DIR))
TRAIN = osp.join(REPO, 'tools', 'train.py')


def load_train():
    spec = importlib.util.spec_from_file_location('tools_train', TRAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train = load_train()


def installed(module):
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


@pytest.fixture
def all_importable(monkeypatch):
    """Pretend every tracker's package imports (the wiring does not need them)."""
    for module in ('wandb', 'torch.utils.tensorboard'):
        if not installed(module):
            monkeypatch.setitem(sys.modules, module, types.ModuleType(module))


def demo_cfg():
    return Config.fromfile(osp.join(REPO, 'configs', 'cloc',
                                    'cloc_vit-tiny-p8_1xb64-1200it_synthetic.py'))


def backend_types(cfg):
    return [b['type'] for b in cfg.visualizer.vis_backends]


def test_none_changes_nothing():
    cfg = demo_cfg()
    before = cfg.to_dict()['visualizer']
    train.enable_tracking(cfg, ['none'], 'run')
    assert cfg.to_dict()['visualizer'] == before
    assert backend_types(cfg) == ['LocalVisBackend']


def test_tensorboard_and_wandb_are_added_to_the_local_backend(all_importable, monkeypatch):
    monkeypatch.delenv('WANDB_PROJECT', raising=False)
    cfg = demo_cfg()
    train.enable_tracking(cfg, ['tensorboard', 'wandb', 'tensorboard'], 'my_run')
    assert backend_types(cfg) == ['LocalVisBackend', 'TensorboardVisBackend', 'WandbVisBackend']
    assert cfg.visualizer.vis_backends[2]['init_kwargs'] == dict(project='cllip_mm',
                                                                 name='my_run')
    # run twice (or a config that has it already): not added again
    train.enable_tracking(cfg, ['wandb'], 'my_run')
    assert backend_types(cfg) == ['LocalVisBackend', 'TensorboardVisBackend', 'WandbVisBackend']
    monkeypatch.setenv('WANDB_PROJECT', 'cloc-b16')
    cfg = demo_cfg()
    train.enable_tracking(cfg, ['wandb'], 'my_run')
    assert cfg.visualizer.vis_backends[1]['init_kwargs']['project'] == 'cloc-b16'


def test_a_config_without_a_visualizer_gets_mmengines_default_plus_the_tracker(all_importable,
                                                                                tmp_path):
    cfg = Config(toy_cfg(str(tmp_path)))
    assert 'visualizer' not in cfg
    train.enable_tracking(cfg, ['tensorboard'], 'toy')
    assert cfg.visualizer.type == 'Visualizer'
    assert backend_types(cfg) == ['LocalVisBackend', 'TensorboardVisBackend']


def test_the_wired_config_builds_mmengines_backends(all_importable, tmp_path):
    register_all_modules(init_default_scope=False)
    cfg = demo_cfg()
    train.enable_tracking(cfg, ['tensorboard', 'wandb'], 'run')
    with DefaultScope.overwrite_default_scope('cllip_mm'):
        visualizer = VISUALIZERS.build(dict(cfg.visualizer, name='tracking_wiring_test',
                                            save_dir=str(tmp_path)))
    assert isinstance(visualizer, Visualizer)
    backends = list(visualizer._vis_backends.values())
    assert [type(b) for b in backends] == [LocalVisBackend, TensorboardVisBackend,
                                           WandbVisBackend]
    assert backends[2]._init_kwargs['project'] == 'cllip_mm'


@pytest.mark.parametrize('tracker,module,install', [
    ('tensorboard', 'torch.utils.tensorboard', 'pip install tensorboard'),
    ('wandb', 'wandb', 'pip install wandb'),
])
def test_a_missing_package_stops_with_what_to_install(monkeypatch, tracker, module, install):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    cfg = demo_cfg()
    with pytest.raises(SystemExit, match=f'--tracking {tracker} needs {module}') as info:
        train.enable_tracking(cfg, [tracker], 'run')
    assert install in str(info.value)
    assert backend_types(cfg) == ['LocalVisBackend']  # unchanged


def run_train(tmp_path, tracker, **env):
    cfg_file = str(tmp_path / 'toy_tracking.py')
    Config(toy_cfg('unused', max_iters=4, interval=4)).dump(cfg_file)
    work_dir = tmp_path / 'work_dir'
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = ':'.join(
        p for p in (REPO, HELPERS_DIR, full_env.get('PYTHONPATH')) if p)
    full_env.update(env)
    proc = subprocess.run([sys.executable, TRAIN, cfg_file, '--work-dir', str(work_dir),
                           '--tracking', tracker], env=full_env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    return proc, work_dir


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_train_without_the_package_fails_before_training(tmp_path):
    if installed('torch.utils.tensorboard'):
        pytest.skip('tensorboard is installed')
    proc, work_dir = run_train(tmp_path, 'tensorboard')
    assert proc.returncode == 1
    assert '--tracking tensorboard needs torch.utils.tensorboard' in proc.stderr
    assert not glob.glob(str(work_dir / '*' / 'vis_data'))


@pytest.mark.skipif(not installed('torch.utils.tensorboard'), reason='tensorboard is not installed')
def test_train_writes_tensorboard_events(tmp_path):
    proc, work_dir = run_train(tmp_path, 'tensorboard')
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = glob.glob(str(work_dir / '*' / 'vis_data' / 'events.out.tfevents.*'))
    assert len(events) == 1, proc.stderr[-3000:]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    scalars = EventAccumulator(events[0])
    scalars.Reload()
    assert 'loss' in scalars.Tags()['scalars'] and 'lr' in scalars.Tags()['scalars']
    assert [e.step for e in scalars.Scalars('loss')] == [1, 2, 3, 4]
    assert 'mse' in scalars.Tags()['scalars']  # the validation at iteration 4


@pytest.mark.skipif(not installed('wandb'), reason='wandb is not installed')
def test_train_writes_an_offline_wandb_run(tmp_path):
    proc, work_dir = run_train(tmp_path, 'wandb', WANDB_MODE='offline',
                               WANDB_PROJECT='cllip_mm_test', WANDB_SILENT='true')
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = glob.glob(str(work_dir / '*' / 'vis_data' / 'wandb' / 'offline-run-*'))
    assert len(runs) == 1, proc.stderr[-3000:]
    assert glob.glob(osp.join(runs[0], 'run-*.wandb'))
