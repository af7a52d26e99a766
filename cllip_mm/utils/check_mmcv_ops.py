# Copyright (c) cllip_mm contributors. All rights reserved.
"""Check that mmcv's compiled ops work on a device, by calling them.

``python -m cllip_mm.utils.check_mmcv_ops --device cuda`` (or ``cpu``; default: ``cuda``
when torch sees a GPU, else ``cpu``) runs ``mmcv.ops.roi_align`` and ``mmcv.ops.nms`` on
that device and compares them with a plain-PyTorch reference computed here in float64
on the CPU (no torchvision). It exits 0 and prints one ``OK`` line, or exits 1 with a
message that says what is wrong and what to do: an mmcv built without CUDA ops
(``mmcv.ops.get_compiling_cuda_version() == 'not available'``, or no CUDA kernel
registered), a torch without CUDA, or kernels whose values are wrong.

An import of ``mmcv.ops`` is not such a check: an mmcv built on a machine without CUDA
imports fine and fails only when an op meets a CUDA tensor.

``--cuda-build-only`` is for a machine without a GPU that builds for one (a container
build): it checks that mmcv's ops were compiled with CUDA (of torch's CUDA major
version) and runs the CPU check; the CUDA call itself then still has to run on a GPU.

The file imports only the standard library, torch and mmcv, so ``tools/install.sh``
runs it by path before ``cllip_mm`` is installed.
"""
import argparse
import math
import sys
from typing import List, Optional, Sequence, Tuple

import torch

# a RoI row is (batch index, x1, y1, x2, y2) in pixels of the input map
ROI_CASES = (
    # output size, spatial scale, sampling ratio (0: adaptive, ceil(roi size / output))
    (3, 1.0, 2),
    (2, 0.5, 0),
)
NMS_IOU = 0.3
TOL = 1e-4  # float32 kernels against a float64 reference


class MmcvOpsError(RuntimeError):
    """mmcv's ops are missing or wrong on the requested device (the message says what
    to do)."""


def _fix_for(device: str) -> str:
    if device == 'cuda':
        return ('Rebuild mmcv with its CUDA ops on a machine with the CUDA toolkit (nvcc of '
                "torch's CUDA major version): `CLLIP_DEVICE=cuda bash tools/install.sh`, which "
                'runs `MMCV_WITH_OPS=1 FORCE_CUDA=1 pip install --no-build-isolation '
                '--no-cache-dir --force-reinstall --no-deps mmcv==2.1.0` (docs/install.md).')
    return ('Rebuild mmcv with its C++ ops: `bash tools/install.sh`, which runs '
            '`MMCV_WITH_OPS=1 pip install --no-build-isolation mmcv==2.1.0` (docs/install.md).')


# ---------------------------------------------------------------- references
def _bilinear(feat: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """Bilinear value [C] of ``feat`` [C, H, W] at (y, x), pixel centres at integers,
    with the border rules of RoIAlign's kernels (Detectron / mmcv): zero outside
    [-1, H] x [-1, W], coordinates clamped to the map inside it."""
    _, h, w = feat.shape
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return feat.new_zeros(feat.shape[0])
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= h - 1:
        y_low = y_high = h - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= w - 1:
        x_low = x_high = w - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (hy * hx * feat[:, y_low, x_low] + hy * lx * feat[:, y_low, x_high]
            + ly * hx * feat[:, y_high, x_low] + ly * lx * feat[:, y_high, x_high])


def reference_roi_align(feats: torch.Tensor, rois: torch.Tensor, output_size: int,
                        spatial_scale: float = 1.0, sampling_ratio: int = 0,
                        aligned: bool = True) -> torch.Tensor:
    """Average RoIAlign [K, C, out, out] of ``feats`` [N, C, H, W] over ``rois`` [K, 5],
    the semantics of ``mmcv.ops.roi_align(..., pool_mode='avg')``, in float64 loops."""
    feats = feats.double().cpu()
    out = feats.new_zeros(len(rois), feats.shape[1], output_size, output_size)
    offset = 0.5 if aligned else 0.0
    for k, (b, x1, y1, x2, y2) in enumerate(rois.double().cpu().tolist()):
        x1, y1 = x1 * spatial_scale - offset, y1 * spatial_scale - offset
        x2, y2 = x2 * spatial_scale - offset, y2 * spatial_scale - offset
        roi_w, roi_h = x2 - x1, y2 - y1
        if not aligned:  # legacy mode: RoIs at least 1 x 1
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_w, bin_h = roi_w / output_size, roi_h / output_size
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(bin_w)
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(bin_h)
        count = max(grid_w * grid_h, 1)
        for i in range(output_size):
            for j in range(output_size):
                acc = feats.new_zeros(feats.shape[1])
                for iy in range(grid_h):
                    y = y1 + i * bin_h + (iy + 0.5) * bin_h / grid_h
                    for ix in range(grid_w):
                        x = x1 + j * bin_w + (ix + 0.5) * bin_w / grid_w
                        acc += _bilinear(feats[int(b)], y, x)
                out[k, :, i, j] = acc / count
    return out


def reference_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices kept by greedy NMS, highest score first: a box is dropped when its IoU
    with a kept box is greater than ``iou_threshold`` (mmcv's rule; box sizes
    ``x2 - x1``, ``y2 - y1``)."""
    boxes, scores = boxes.double().cpu(), scores.double().cpu()
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: List[int] = []
    for i in scores.argsort(descending=True).tolist():
        ok = True
        for j in keep:
            w = (torch.min(boxes[i, 2], boxes[j, 2]) - torch.max(boxes[i, 0], boxes[j, 0])).clamp(min=0)
            h = (torch.min(boxes[i, 3], boxes[j, 3]) - torch.max(boxes[i, 1], boxes[j, 1])).clamp(min=0)
            inter = w * h
            if inter / (areas[i] + areas[j] - inter) > iou_threshold:
                ok = False
                break
        if ok:
            keep.append(i)
    return torch.tensor(keep, dtype=torch.long)


# ---------------------------------------------------------------- inputs
def roi_inputs() -> Tuple[torch.Tensor, torch.Tensor]:
    """Two 2-channel 7 x 9 maps and RoIs inside, across and beyond the borders."""
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 2, 7, 9, generator=g)
    rois = torch.tensor([
        [0, 1.0, 1.0, 6.0, 5.0],
        [1, 0.3, 2.2, 8.7, 6.9],
        [1, -2.0, -1.5, 4.0, 3.0],  # crosses the top-left border
        [0, 5.0, 3.0, 12.0, 9.5],  # beyond the bottom-right border
        [0, 2.5, 2.5, 3.1, 3.4],  # smaller than a bin
    ])
    return feats, rois


def nms_inputs() -> Tuple[torch.Tensor, torch.Tensor]:
    """Boxes in overlapping groups, distinct scores (no ties for the order to depend on)."""
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(40, 2, generator=g) * 30
    boxes = torch.cat([xy, xy + 6 + torch.rand(40, 2, generator=g) * 10], 1)
    scores = torch.randperm(40, generator=g).float() / 40 + 0.01
    return boxes, scores


# ---------------------------------------------------------------- checks
def _run_op(name: str, device: str, fn, *args):
    try:
        return fn(*args)
    except (RuntimeError, NotImplementedError, AttributeError, TypeError) as e:
        raise MmcvOpsError(f'mmcv.ops.{name} failed on {device}: {type(e).__name__}: {e}\n'
                           f'mmcv has no working {name} kernel for {device}. '
                           f'{_fix_for(device)}') from e


def _check_cuda_available() -> None:
    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            why = (f'torch {torch.__version__} is a CPU-only build (torch.version.cuda is None). '
                   'Install a CUDA build of torch (docs/install.md), e.g. `pip install torch '
                   '--index-url https://download.pytorch.org/whl/cu121`, then rebuild mmcv, or '
                   'check the CPU ops with `--device cpu`.')
        else:
            why = (f'torch {torch.__version__} is built for CUDA {torch.version.cuda} but sees no '
                   'GPU (torch.cuda.is_available() is False): check `nvidia-smi`, the driver '
                   f'(it must support CUDA {torch.version.cuda}) and CUDA_VISIBLE_DEVICES; on a '
                   'machine without a GPU use `--device cpu`, or `--cuda-build-only` to check '
                   'that mmcv was compiled with CUDA.')
        raise MmcvOpsError(f'CUDA requested but not available: {why}')


def check_cuda_build() -> str:
    """Raise :class:`MmcvOpsError` unless mmcv's ops were compiled with CUDA of torch's
    CUDA major version; return that version."""
    from mmcv import ops
    compiled = _run_op('get_compiling_cuda_version', 'cuda', ops.get_compiling_cuda_version)
    if compiled in (None, '', 'not available'):
        raise MmcvOpsError(
            'mmcv was built without CUDA ops (mmcv.ops.get_compiling_cuda_version() = '
            f'{compiled!r}): its roi_align / nms run on the CPU only and fail on CUDA '
            f'tensors. {_fix_for("cuda")}')
    if torch.version.cuda is None:
        raise MmcvOpsError(
            f'mmcv ops were compiled with CUDA {compiled}, but torch {torch.__version__} is a '
            'CPU-only build: install the CUDA build of torch mmcv was compiled against '
            '(docs/install.md).')
    if compiled.split('.')[0] != torch.version.cuda.split('.')[0]:
        raise MmcvOpsError(
            f'mmcv ops were compiled with CUDA {compiled}, torch is built for CUDA '
            f'{torch.version.cuda}: the major versions must match. {_fix_for("cuda")}')
    return compiled


def check_mmcv_ops(device: str) -> str:
    """Run roi_align and nms on ``device`` ('cpu' or 'cuda') against the references.

    Returns a one-line summary; raises :class:`MmcvOpsError` with what is wrong and what
    to do.
    """
    if device not in ('cpu', 'cuda'):
        raise ValueError(f'device must be "cpu" or "cuda", not {device!r}')
    if device == 'cuda':
        _check_cuda_available()
    try:
        import mmcv
        from mmcv import ops
    except ImportError as e:
        raise MmcvOpsError(f'cannot import mmcv.ops ({e}). {_fix_for(device)}') from e
    extra = ''
    if device == 'cuda':
        extra = f', ops compiled with CUDA {check_cuda_build()}'
    dev = torch.device(device)

    feats, rois = roi_inputs()
    worst = 0.0
    for output_size, scale, ratio in ROI_CASES:
        args = (feats.to(dev), rois.to(dev), (output_size, output_size), scale, ratio, 'avg',
                True)
        got = _run_op('roi_align', device, ops.roi_align, *args)
        if not isinstance(got, torch.Tensor) or got.device.type != dev.type:
            raise MmcvOpsError(f'mmcv.ops.roi_align on {device} returned '
                               f'{type(got).__name__} on {getattr(got, "device", "?")}, '
                               f'not a tensor on {device}. {_fix_for(device)}')
        want = reference_roi_align(feats, rois, output_size, scale, ratio)
        if got.shape != want.shape:
            raise MmcvOpsError(f'mmcv.ops.roi_align on {device} returned shape '
                               f'{tuple(got.shape)}, expected {tuple(want.shape)}. '
                               f'{_fix_for(device)}')
        err = (got.double().cpu() - want).abs().max().item()
        if not err <= TOL:  # also catches NaN
            raise MmcvOpsError(
                f'mmcv.ops.roi_align on {device} (output {output_size}, spatial_scale {scale}, '
                f'sampling_ratio {ratio}) differs from the reference by {err:.3g} (> {TOL}): '
                f'its kernel computes something else. {_fix_for(device)}')
        worst = max(worst, err)

    boxes, scores = nms_inputs()
    got = _run_op('nms', device, ops.nms, boxes.to(dev), scores.to(dev), NMS_IOU)
    dets, keep = got
    want = reference_nms(boxes, scores, NMS_IOU)
    if keep.device.type != dev.type or not torch.equal(keep.long().cpu(), want):
        raise MmcvOpsError(
            f'mmcv.ops.nms on {device} keeps {keep.tolist()} (on {keep.device}); the reference '
            f'keeps {want.tolist()} (IoU threshold {NMS_IOU}). {_fix_for(device)}')
    want_dets = torch.cat([boxes[want], scores[want, None]], 1)
    if not torch.allclose(dets.float().cpu(), want_dets, atol=TOL):
        raise MmcvOpsError(f'mmcv.ops.nms on {device} returns boxes / scores that are not those '
                           f'of the kept indices. {_fix_for(device)}')
    where = f'{device}:{torch.cuda.current_device()}' if device == 'cuda' else device
    return (f'mmcv {mmcv.__version__} roi_align and nms on {where} match the reference '
            f'(roi_align max |diff| {worst:.1e}, nms keeps {len(want)} of {len(boxes)}); '
            f'torch {torch.__version__}{extra}')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto',
                        help='where to run the ops (auto: cuda if torch sees a GPU, else cpu)')
    parser.add_argument('--cuda-build-only', action='store_true',
                        help='no GPU here: check that mmcv was compiled with CUDA and run the '
                        'CPU check')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    device = args.device
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    try:
        if args.cuda_build_only:
            compiled = check_cuda_build()
            summary = check_mmcv_ops('cpu') + (f'; ops compiled with CUDA {compiled} (no CUDA '
                                               'call made: run --device cuda on a GPU)')
        else:
            summary = check_mmcv_ops(device)
    except MmcvOpsError as e:
        print(f'[check_mmcv_ops] FAILED: {e}', file=sys.stderr)
        return 1
    print(f'[check_mmcv_ops] OK: {summary}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
