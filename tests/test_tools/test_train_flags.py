# Copyright (c) cllip_mm contributors. All rights reserved.
"""tools/train.py ``--amp`` and ``--auto-scale-lr``, end to end on the toy regression task
of tests/test_utils/toy_model_helpers.py (3 iterations of batch 4, AdamW at lr 0.05, no
LR schedule; ``auto_scale_lr.base_batch_size`` 16).

The tool's ``main()`` runs in this process (argv as on the command line) and the answers
are read from what a run leaves in its work dir: the dumped config, the final checkpoint
(optimizer state, the message hub's ``train/loss`` / ``train/lr`` history) and the log.
"""
import glob
import importlib.util
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config

HELPERS_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'test_utils')
if HELPERS_DIR not in sys.path:  # the config's custom_imports needs toy_model_helpers
    sys.path.insert(0, HELPERS_DIR)
from toy_model_helpers import SIGKILL_ENV, toy_cfg  # noqa: E402

import cllip_mm  # noqa: E402,F401  allow-lists MMEngine's types for torch.load

REPO = osp.dirname(osp.dirname(HELPERS_DIR))
TRAIN = osp.join(REPO, 'tools', 'train.py')
ITERS, BATCH, LR, BASE_BATCH = 3, 4, 0.05, 16


def load_train_tool():
    spec = importlib.util.spec_from_file_location('cllip_mm_tools_train_flags', TRAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_config(path, auto_scale_lr=True) -> str:
    """The toy config with a constant LR; a distinct file name per run also gives each
    run its own experiment name (MMEngine's logger / message hub instances)."""
    cfg = toy_cfg('unused', max_iters=ITERS, interval=ITERS, batch_size=BATCH)
    cfg.pop('param_scheduler')
    cfg['optim_wrapper']['optimizer']['lr'] = LR
    cfg['log_level'] = 'INFO'
    if auto_scale_lr:
        cfg['auto_scale_lr'] = dict(enable=False, base_batch_size=BASE_BATCH)
    Config(cfg).dump(str(path))
    return str(path)


def train(tmp_dir, name, *flags, auto_scale_lr=True):
    """``python tools/train.py CONFIG --work-dir WD FLAGS`` (in this process); returns
    the work dir."""
    config = write_config(osp.join(tmp_dir, f'{name}.py'), auto_scale_lr)
    work_dir = osp.join(tmp_dir, f'work_dir_{name}')
    tool = load_train_tool()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, 'argv', [TRAIN, config, '--work-dir', work_dir, *flags])
        mp.delenv('LOCAL_RANK', raising=False)
        mp.delenv(SIGKILL_ENV, raising=False)
        tool.main()
    return work_dir


def final_checkpoint(work_dir):
    return torch.load(osp.join(work_dir, f'iter_{ITERS}.pth'), map_location='cpu',
                      weights_only=False)


def logged(checkpoint, key):
    return np.asarray(checkpoint['message_hub']['log_scalars'][f'train/{key}'].data[0])


def dumped_config(work_dir, name):
    return Config.fromfile(osp.join(work_dir, f'{name}.py'))


def log_text(work_dir):
    (log,) = glob.glob(osp.join(work_dir, '*', '*.log'))
    with open(log) as f:
        return f.read()


@pytest.fixture(scope='module')
def fp32_run(tmp_path_factory):
    return train(str(tmp_path_factory.mktemp('fp32')), 'toy_fp32')


def test_fp32_reference_run(fp32_run):
    cfg = dumped_config(fp32_run, 'toy_fp32')
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    assert cfg.auto_scale_lr.enable is False
    checkpoint = final_checkpoint(fp32_run)
    assert len(logged(checkpoint, 'loss')) == ITERS
    np.testing.assert_array_equal(logged(checkpoint, 'lr'), [LR] * ITERS)
    assert [g['lr'] for g in checkpoint['optimizer']['param_groups']] == [LR]


def test_amp_trains_in_mixed_precision(fp32_run, tmp_path):
    """On CPU ``--amp`` switches to BF16AmpOptimWrapper (MMEngine's AmpOptimWrapper needs
    an accelerator): the losses follow the fp32 run within bfloat16's precision (8-bit
    mantissa, relative step 2**-8) but are not the same numbers, so the forward pass did
    run under autocast; parameters and optimizer state stay float32."""
    work_dir = train(str(tmp_path), 'toy_amp', '--amp')
    expected = 'AmpOptimWrapper' if torch.cuda.is_available() else 'BF16AmpOptimWrapper'
    assert dumped_config(work_dir, 'toy_amp').optim_wrapper.type == expected
    amp, fp32 = final_checkpoint(work_dir), final_checkpoint(fp32_run)
    amp_loss, fp32_loss = logged(amp, 'loss'), logged(fp32, 'loss')
    assert len(amp_loss) == ITERS
    np.testing.assert_allclose(amp_loss, fp32_loss, rtol=1e-2)
    assert not np.array_equal(amp_loss, fp32_loss), (amp_loss, fp32_loss)
    assert all(v.dtype == torch.float32 for v in amp['state_dict'].values())
    for name, param in fp32['state_dict'].items():  # a few AdamW steps apart, no more
        torch.testing.assert_close(amp['state_dict'][name], param, rtol=0, atol=1e-3)
        assert not torch.equal(amp['state_dict'][name], param), name


def test_auto_scale_lr_scales_by_the_total_batch(fp32_run, tmp_path):
    """LR = base LR x total batch / base_batch_size = 0.05 x 4 / 16 = 0.0125, at every
    iteration and in the optimizer; the unflagged run keeps 0.05 (fp32_run)."""
    work_dir = train(str(tmp_path), 'toy_scaled', '--auto-scale-lr')
    scaled = LR * BATCH / BASE_BATCH
    assert scaled == 0.0125
    assert dumped_config(work_dir, 'toy_scaled').auto_scale_lr.enable is True
    checkpoint = final_checkpoint(work_dir)
    np.testing.assert_array_equal(logged(checkpoint, 'lr'), [scaled] * ITERS)
    assert [g['lr'] for g in checkpoint['optimizer']['param_groups']] == [scaled]
    assert ('LR is set based on batch size of 16 and the current batch size is 4. '
            'Scaling the original LR by 0.25.') in log_text(work_dir)
    assert 'Scaling the original LR' not in log_text(fp32_run)
    # a smaller step, so the first update moves the weights less than at 0.05
    assert not np.array_equal(logged(checkpoint, 'loss')[1:],
                              logged(final_checkpoint(fp32_run), 'loss')[1:])


def test_auto_scale_lr_without_the_config_section_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match='Can not find "auto_scale_lr"'):
        train(str(tmp_path), 'toy_no_section', '--auto-scale-lr', auto_scale_lr=False)
    assert not osp.exists(osp.join(tmp_path, 'work_dir_toy_no_section'))
