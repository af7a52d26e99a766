# Copyright (c) cllip_mm contributors. All rights reserved.
"""The distributed entry points, each run as a user runs it (2 gloo processes on CPU)
against its 1-process counterpart:

- ``tools/dist_test.sh CONFIG CKPT 2`` gives the metrics of ``tools/test.py CONFIG CKPT``
  (a random-init tiny CLOC on 15 synthetic images: rank 1 is padded);
- ``tools/dist_benchmark.sh CONFIG CKPT 2`` gives the results of ``tools/benchmark.py``,
  which are the hand-computed answers of the toy colour model (test_benchmark.py);
- ``tools/dist_train.sh`` with the SigLIP loss, 2 processes x 4 images, gives the
  losses and weights of 1 process x 8 images after 2 iterations.

Each also checks that the run had 2 processes (MMEngine's ``GPU number: 2``): a script
that started 1, or 2 unconnected ones, would give the same answers.
"""
import glob
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from test_benchmark import (
    COCO_EXPECTED,
    KARPATHY_EXPECTED,
    toy_checkpoint,
    write_coco,
    write_karpathy,
)
from toy_colour_model import toy_cfg, write_tokenizer

import cllip_mm  # noqa: F401  allow-lists MMEngine's types for torch.load

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TESTS_DIR = osp.dirname(osp.abspath(__file__))  # toy_colour_model, for custom_imports
TOL = 1e-6


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f'dist_entry_points_{name}',
                                                  osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def describe(proc):
    return f'rc={proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}'


def run_dist_script(script, *args, cwd):
    """``bash tools/<script> args...``; asserts it ran 2 connected processes."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable,
               # PORT=0: torchrun --standalone binds a free port itself (no port race,
               # no collision with other tests' runs)
               PORT='0')
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO, TESTS_DIR, os.environ.get('PYTHONPATH')) if p)
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, describe(proc)
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log and 'GPU number: 2' in log, describe(proc)
    return proc


def logged_metrics(work_dir):
    """The metrics MMEngine's LoggerHook wrote after the test loop: the floats from its
    JSON file (full precision), the integer counts (null there) from its log line."""
    files = glob.glob(osp.join(str(work_dir), '*', '*.json'))
    assert len(files) == 1, files
    with open(files[0]) as f:
        metrics = json.loads(f.read().strip().splitlines()[-1])
    with open(files[0][:-len('json')] + 'log') as f:
        line = [line for line in f if 'Iter(test)' in line][-1]
    for key, value in metrics.items():
        if value is None:
            metrics[key] = int(re.search(rf' {re.escape(key)}: (\d+) ', line).group(1))
    for key in ('time', 'data_time'):
        metrics.pop(key)
    return metrics


def assert_same_metrics(got, expected):
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=TOL, rel=0), (key, got[key], value)


# ------------------------------------------------------------- tools/dist_test.sh
@pytest.mark.slow
def test_dist_test_sh_matches_tools_test(tiny_cloc_checkpoint, tiny_region_set, tmp_path,
                                         monkeypatch):
    cfg_path, ckpt = tiny_cloc_checkpoint
    with open(osp.join(tiny_region_set, 'annotations', 'val.jsonl')) as f:
        lines = f.readlines()
    ann_file = str(tmp_path / 'val15.jsonl')
    with open(ann_file, 'w') as f:  # 15 images: the sampler pads rank 1 with a copy of one
        f.writelines(lines[:15])
    cfg = Config.fromfile(cfg_path)
    cfg.test_dataloader.dataset.ann_file = ann_file
    cfg.test_dataloader.batch_size = 3  # 1 process: 5 batches; 2: 3 each, the last short
    cfg.experiment_name = cfg.visualizer.name = 'dist_entry_points_test'
    config = str(tmp_path / 'tiny_cloc.py')
    cfg.dump(config)

    run_dist_script('dist_test.sh', config, ckpt, '2', '--work-dir', str(tmp_path / 'two'),
                    cwd=tmp_path)
    two = logged_metrics(tmp_path / 'two')

    # python tools/test.py CONFIG CKPT, in this process
    monkeypatch.setattr(sys, 'argv', ['tools/test.py', config, ckpt,
                                      '--work-dir', str(tmp_path / 'one')])
    load_tool('test').main()
    one = logged_metrics(tmp_path / 'one')

    assert one['region_cls/num_regions'] > 20 and one['retrieval/num_images'] == 15, one
    assert {'region_cls/top1', 'retrieval/i2t_R@1', 'grounding/acc@0.5'} <= set(one), one
    assert_same_metrics(two, one)


# --------------------------------------------------------- tools/dist_benchmark.sh
@pytest.mark.slow
def test_dist_benchmark_sh_matches_tools_benchmark(make_tiny_cloc_cfg, tmp_path):
    """COCO region classification (3 images with boxes) and Karpathy retrieval (3 test
    images): rank 1 is padded in each."""
    root = str(tmp_path / 'data')
    for write in (write_coco, write_karpathy):
        write(root)
    cfg = toy_cfg(make_tiny_cloc_cfg(), write_tokenizer(osp.join(root, 'tokenizer')))
    config = str(tmp_path / 'toy.py')
    cfg.dump(config)
    ckpt = toy_checkpoint(cfg, str(tmp_path / 'toy.pth'))
    tasks = ['coco_region_cls', 'coco_retrieval']
    args = ['--tasks', *tasks, '--data-root', root, '--num-workers', '0', '--batch-size', '2']

    out = tmp_path / 'two.json'
    proc = run_dist_script('dist_benchmark.sh', config, ckpt, '2', *args,
                           '--work-dir', str(tmp_path / 'two'), '--out', str(out), cwd=tmp_path)
    assert 'region_cls/top1' in proc.stdout  # the table, printed once
    with open(out) as f:
        two = json.load(f)['results']

    one = load_tool('benchmark').main([config, ckpt, *args, '--work-dir', str(tmp_path / 'one')])
    for task, expected in zip(tasks, (COCO_EXPECTED, KARPATHY_EXPECTED)):
        for key, value in expected.items():  # the known answers ...
            assert one[task][key] == pytest.approx(value, abs=TOL), (task, key, one[task])
    assert set(two) == set(tasks)
    for task in tasks:  # ... and every metric of 2 processes equal to 1's
        assert_same_metrics(two[task], one[task])


# ----------------------------------------------------- tools/dist_train.sh, SigLIP
@pytest.mark.slow
def test_dist_train_sh_siglip_matches_single_process(make_tiny_cloc_cfg, tmp_path):
    """2 processes x 4 images == 1 process x 8 images, 2 iterations of CLOC with the
    SigLIP loss: every logged loss term and every final weight."""
    max_iters = 2
    cfg = make_tiny_cloc_cfg(max_iters=max_iters)
    cfg.model.clip_loss = dict(type='SigLipLoss')
    # no random augmentation: each rank would draw its own (same-seeded) crops and flips
    cfg.train_dataloader.dataset.pipeline = [
        dict(type='LoadImageFromFileChecked'),
        dict(type='Resize', scale=(32, 32), keep_ratio=False),
        dict(type='PackRegionTextInputs')]
    cfg.update(val_dataloader=None, val_cfg=None, val_evaluator=None)
    cfg.default_hooks.checkpoint.update(interval=max_iters, save_last=True)
    cfg.experiment_name = cfg.visualizer.name = 'dist_entry_points_siglip'
    config = str(tmp_path / 'tiny_siglip.py')
    cfg.dump(config)

    work_dir = str(tmp_path / 'two')
    run_dist_script('dist_train.sh', config, '2', '--work-dir', work_dir,
                    '--cfg-options', 'train_dataloader.batch_size=4', cwd=tmp_path)
    final = torch.load(osp.join(work_dir, f'iter_{max_iters}.pth'), map_location='cpu',
                       weights_only=False)

    cfg.work_dir = str(tmp_path / 'one')
    reference = Runner.from_cfg(cfg)  # batch 8 in 1 process
    reference.train()

    scalars = final['message_hub']['log_scalars']
    ref_scalars = reference.message_hub.log_scalars
    loss_keys = {k for k in ref_scalars if k.startswith('train/loss')}
    assert {'train/loss', 'train/loss_clip', 'train/loss_region', 'train/loss_ground'} <= loss_keys
    for key in sorted(loss_keys):
        ref = ref_scalars[key].data[0]
        assert len(ref) == max_iters
        np.testing.assert_allclose(scalars[key].data[0], ref, rtol=1e-5, atol=1e-6, err_msg=key)
    state = reference.model.state_dict()
    assert {'clip_loss.logit_scale', 'clip_loss.logit_bias'} <= set(state)
    num_key_biases = 0
    for name, param in state.items():
        got = final['state_dict'][name]
        if name.endswith('attn.in_proj_bias'):
            # The key bias (nn.MultiheadAttention's [q | k | v], middle third) has a zero
            # gradient in exact arithmetic (softmax ignores a constant added to all of a
            # query's logits): its gradient is rounding noise, which AdamW's normalised
            # step turns into lr-sized updates that differ with the summation order.
            width = len(param) // 3
            keep = torch.ones(len(param), dtype=torch.bool)
            keep[width:2 * width] = False
            got, param = got[keep], param[keep]
            num_key_biases += 1
        torch.testing.assert_close(got, param, atol=1e-6, rtol=1e-5, msg=name)
    assert num_key_biases == 3  # image and text towers, Prompter: 1 block each
