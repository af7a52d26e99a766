# Copyright (c) cllip_mm contributors. All rights reserved.
"""cllip_mm/utils/check_mmcv_ops.py: the check tools/install.sh runs on mmcv's ops.

Its references against hand-worked values, mmcv's CPU ops against them, the check
failing on broken kernels, and the messages when CUDA is requested but torch has none or
mmcv was built without CUDA ops. The CUDA call itself runs only where a GPU is at hand.
"""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmcv import ops

from cllip_mm.utils import check_mmcv_ops as check
from cllip_mm.utils.check_mmcv_ops import MmcvOpsError, check_mmcv_ops

SCRIPT = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'cllip_mm',
                  'utils', 'check_mmcv_ops.py')
REAL_ROI_ALIGN = ops.roi_align
REAL_NMS = ops.nms


def linear_map():
    """One 5 x 6 channel f(y, x) = 10 y + x: bilinear sampling of it is exact."""
    y, x = torch.meshgrid(torch.arange(5.), torch.arange(6.), indexing='ij')
    return (10 * y + x)[None, None]


# (roi, output size, sampling ratio, expected [out, out]) worked by hand; aligned=True
# shifts the RoI by -0.5 px, pixel centres are at integers.
HAND_WORKED_ROI_ALIGN = [
    # RoI 0.5..3.5 in x and y, 3 bins of 1 px, samples at +-0.25 around the bin centres
    # 1, 2, 3: each bin is f at its centre
    ([0, 1, 1, 4, 4], 3, 2, [[11, 12, 13], [21, 22, 23], [31, 32, 33]]),
    # RoI -0.5..0.5: samples at -0.25 (clamped to 0) and 0.25: mean 0.125 in y and x
    ([0, 0, 0, 1, 1], 1, 2, [[10 * 0.125 + 0.125]]),
    # one sample at y = 4.5 (beyond the last row 4, inside [-1, H]): clamped to row 4
    ([0, 0, 4.5, 1, 5.5], 1, 1, [[40.0]]),
    # one sample at y = 5.6 > H = 5: zero
    ([0, 0, 5.6, 1, 6.6], 1, 1, [[0.0]]),
    # adaptive sampling (0): ceil(bin 2 px) = 2 samples per axis, at 0.5 and 1.5 -> 1.0;
    # bins centred at 1 and 3
    ([0, 0.5, 0.5, 4.5, 4.5], 2, 0, [[11, 13], [31, 33]]),
]


@pytest.mark.parametrize('roi,out,ratio,expected', HAND_WORKED_ROI_ALIGN)
def test_roi_align_reference_and_mmcv_cpu_match_hand_worked_values(roi, out, ratio, expected):
    feats, rois = linear_map(), torch.tensor([roi], dtype=torch.float32)
    expected = torch.tensor(expected, dtype=torch.float64)[None, None]
    ref = check.reference_roi_align(feats, rois, out, 1.0, ratio)
    assert torch.allclose(ref, expected, atol=1e-9), ref
    got = ops.roi_align(feats, rois, (out, out), 1.0, ratio, 'avg', True)
    assert torch.allclose(got.double(), expected, atol=1e-5), got


def test_nms_reference_and_mmcv_cpu_match_hand_worked_keep():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 5.]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # box 3 first; box 0 has IoU 50 / 100 = 0.5 with it: not above 0.5, kept; box 1 has
    # IoU 81 / 119 = 0.68 with box 0: dropped; box 2 overlaps nothing
    expected = [3, 0, 2]
    assert check.reference_nms(boxes, scores, 0.5).tolist() == expected
    assert ops.nms(boxes, scores, 0.5)[1].tolist() == expected
    # at 0.49 the 0.5 overlap drops box 0 as well
    assert check.reference_nms(boxes, scores, 0.49).tolist() == [3, 1, 2]


def test_check_passes_on_cpu_and_main_exits_0(capsys):
    summary = check_mmcv_ops('cpu')
    assert 'roi_align and nms on cpu match the reference' in summary
    assert check.main(['--device', 'cpu']) == 0
    assert '[check_mmcv_ops] OK' in capsys.readouterr().out


def _misaligned_roi_align(feats, rois, output_size, scale, ratio, mode, aligned):
    return REAL_ROI_ALIGN(feats, rois, output_size, scale, ratio, mode, not aligned)


def _missing_kernel(*args, **kwargs):
    raise RuntimeError('roi_align_forward_impl: implementation for device cuda:0 not found.')


def _keep_everything(boxes, scores, iou_threshold):
    return REAL_NMS(boxes, scores, 1.0)


def _nms_lost_scores(boxes, scores, iou_threshold):
    dets, keep = REAL_NMS(boxes, scores, iou_threshold)
    return torch.cat([dets[:, :4], torch.zeros_like(dets[:, 4:])], 1), keep


@pytest.mark.parametrize('name,broken,message', [
    ('roi_align', _misaligned_roi_align, 'differs from the reference'),
    ('roi_align', _missing_kernel, 'mmcv has no working roi_align kernel for cpu'),
    ('roi_align', lambda *a: REAL_ROI_ALIGN(*a)[:1], 'returned shape'),
    ('nms', _keep_everything, 'the reference keeps'),
    ('nms', _nms_lost_scores, 'not those of the kept indices'),
], ids=['misaligned', 'missing-kernel', 'wrong-shape', 'nms-keeps-all', 'nms-scores'])
def test_check_fails_on_a_broken_op(monkeypatch, capsys, name, broken, message):
    monkeypatch.setattr(ops, name, broken)
    with pytest.raises(MmcvOpsError, match=message) as info:
        check_mmcv_ops('cpu')
    assert 'tools/install.sh' in str(info.value)  # says what to do
    assert check.main(['--device', 'cpu']) == 1
    assert '[check_mmcv_ops] FAILED' in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')
def test_cuda_requested_without_cuda_fails_with_a_message():
    # by path, as tools/install.sh runs it before cllip_mm is installed
    proc = subprocess.run([sys.executable, SCRIPT, '--device', 'cuda'], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1, proc
    assert 'CUDA requested but not available' in proc.stderr, proc.stderr
    assert '--device cpu' in proc.stderr  # what to do instead
    assert 'OK' not in proc.stdout


def _fake_cuda(monkeypatch, torch_cuda, mmcv_cuda):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.version, 'cuda', torch_cuda)
    monkeypatch.setattr(ops, 'get_compiling_cuda_version', lambda: mmcv_cuda)


def test_cuda_fails_on_an_mmcv_built_without_cuda_ops(monkeypatch):
    _fake_cuda(monkeypatch, '12.1', 'not available')
    with pytest.raises(MmcvOpsError, match='mmcv was built without CUDA ops') as info:
        check_mmcv_ops('cuda')
    assert 'MMCV_WITH_OPS=1 FORCE_CUDA=1' in str(info.value)
    assert 'CLLIP_DEVICE=cuda bash tools/install.sh' in str(info.value)


def test_cuda_build_only_checks_the_compiled_cuda_version(monkeypatch, capsys):
    _fake_cuda(monkeypatch, '12.1', '11.8')
    with pytest.raises(MmcvOpsError, match='major versions must match'):
        check.check_cuda_build()
    monkeypatch.setattr(ops, 'get_compiling_cuda_version', lambda: '12.4')
    assert check.main(['--cuda-build-only']) == 0
    assert 'ops compiled with CUDA 12.4 (no CUDA call made' in capsys.readouterr().out
    monkeypatch.setattr(ops, 'get_compiling_cuda_version', lambda: 'not available')
    assert check.main(['--cuda-build-only']) == 1
    assert 'built without CUDA ops' in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_cuda_ops_match_the_reference_on_a_gpu():
    assert 'on cuda:' in check_mmcv_ops('cuda')
