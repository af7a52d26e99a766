# Copyright (c) cllip_mm contributors. All rights reserved.
"""What the inferencer accepts as an image, brought to the pipelines' convention.

The pipelines carry BGR uint8 HWC images (as ``mmcv.imread`` gives them). A user hands
over file paths, ``file://`` URLs, or arrays in whatever layout their library produced:
OpenCV (BGR HWC), PIL / matplotlib (RGB HWC), torchvision (RGB CHW), views that are
transposed or sliced (non-contiguous). :func:`to_bgr_hwc` turns any of these into a
fresh contiguous BGR HWC array, so that no later step (``mmcv`` resize, custom ops
that read storage rather than strides) sees an unexpected layout.
"""
import os.path as osp
from typing import Union
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import numpy as np
import torch

ImageInput = Union[str, np.ndarray, torch.Tensor]

CHANNEL_ORDERS = ('bgr', 'rgb')
LAYOUTS = ('auto', 'hwc', 'chw')


def resolve_image_path(path: str) -> str:
    """A path or a ``file://`` URL -> a local path (other URL schemes are kept for
    MMEngine's file backends)."""
    parsed = urlparse(path)
    if parsed.scheme == 'file':
        if parsed.netloc not in ('', 'localhost'):
            raise ValueError(f'{path!r}: only local file URLs (file:///...) are supported')
        return url2pathname(unquote(parsed.path))
    return path


def _infer_layout(shape, where: str) -> str:
    if shape[-1] in (1, 3, 4):
        return 'hwc'
    if shape[0] in (1, 3, 4):
        return 'chw'
    raise ValueError(f'{where}: cannot tell the channel axis of an array of shape '
                     f'{tuple(shape)}; expected 1, 3 or 4 channels first (CHW) or last (HWC)')


def to_bgr_hwc(image: Union[np.ndarray, torch.Tensor],
               channel_order: str = 'bgr',
               layout: str = 'auto',
               where: str = 'image') -> np.ndarray:
    """An image array -> a new contiguous BGR HWC array (uint8 when the input is).

    Args:
        image (ndarray | Tensor): [H, W] (grey), [H, W, C] or [C, H, W] with C in
            {1, 3, 4} (an alpha channel is dropped), any strides. Integer arrays must lie
            in [0, 255]; float arrays are read on the 0-255 scale (what the test
            pipeline's ``to_float32`` gives) and rejected when they look like 0-1.
        channel_order (str): 'bgr' (OpenCV / mmcv) or 'rgb' (PIL, torchvision).
        layout (str): 'hwc', 'chw' or 'auto' (HWC when the last axis has 1, 3 or 4
            entries, else CHW when the first has).
        where (str): Names the input in error messages.

    Returns:
        ndarray: [H, W, 3] BGR, C-contiguous, not sharing memory with ``image``.
    """
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f'channel_order must be one of {CHANNEL_ORDERS}, got {channel_order!r}')
    if layout not in LAYOUTS:
        raise ValueError(f'layout must be one of {LAYOUTS}, got {layout!r}')
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f'{where}: expected a path, a numpy array or a tensor, '
                        f'got {type(image).__name__}')
    if image.ndim == 2:
        image = image[..., None]
        layout = 'hwc'
    if image.ndim != 3:
        raise ValueError(f'{where}: expected an [H, W], [H, W, C] or [C, H, W] array, '
                         f'got shape {image.shape}')
    if layout == 'auto':
        layout = _infer_layout(image.shape, where)
    if layout == 'chw':
        image = image.transpose(1, 2, 0)
    channels = image.shape[-1]
    if channels not in (1, 3, 4):
        raise ValueError(f'{where}: {channels} channels in a {layout.upper()} array of shape '
                         f'{image.shape}; expected 1, 3 or 4')
    if min(image.shape[:2]) < 1:
        raise ValueError(f'{where}: empty image of shape {image.shape}')

    if image.dtype == np.bool_ or not np.issubdtype(image.dtype, np.number):
        raise TypeError(f'{where}: unsupported dtype {image.dtype}')
    if np.issubdtype(image.dtype, np.integer):
        if image.dtype != np.uint8:
            low, high = int(image.min()), int(image.max())
            if low < 0 or high > 255:
                raise ValueError(f'{where}: integer values in [{low}, {high}], expected [0, 255]')
            image = image.astype(np.uint8)
    else:
        if not np.isfinite(image).all():
            raise ValueError(f'{where}: the image has NaN or infinite values')
        high = float(image.max())
        if 0 < high <= 1.0:
            raise ValueError(f'{where}: float values in [0, {high:.3g}] look like the 0-1 scale; '
                             'the pipelines read 0-255 (multiply by 255 or pass uint8)')
        image = image.astype(np.float32)

    if channels == 1:
        image = np.repeat(image, 3, axis=-1)
    elif channels == 4:
        image = image[..., :3]
    if channel_order == 'rgb':
        image = image[..., ::-1]
    # A fresh C-contiguous copy: the caller's buffer is never aliased or modified.
    return np.array(image, order='C', copy=True)


def image_to_results(image: ImageInput,
                     channel_order: str = 'bgr',
                     layout: str = 'auto',
                     where: str = 'image') -> dict:
    """One user input -> the start of a pipeline's results dict: ``img_path`` for a
    path / URL (the pipeline's own loader reads it), else ``img`` (BGR HWC) plus
    ``img_shape`` / ``ori_shape`` (h, w) and ``img_path=None``."""
    if isinstance(image, str):
        path = resolve_image_path(image)
        if '://' not in path and not osp.isfile(path):
            raise FileNotFoundError(f'{where}: no image file at {image!r}')
        return dict(img_path=path)
    img = to_bgr_hwc(image, channel_order=channel_order, layout=layout, where=where)
    return dict(img=img, img_path=None, img_shape=img.shape[:2], ori_shape=img.shape[:2])


def check_boxes(boxes, where: str = 'boxes') -> np.ndarray:
    """User boxes -> float32 [R, 4] xyxy, with a clear error for a bad one."""
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    array = np.asarray(boxes, dtype=np.float32)
    if array.size == 0:
        return np.zeros((0, 4), np.float32)
    if array.ndim == 1 and array.shape[0] == 4:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f'{where}: expected [R, 4] xyxy boxes, got shape {array.shape}')
    for i, box in enumerate(array):
        if not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f'{where}[{i}] = {box.tolist()}: need finite x1 < x2 and y1 < y2 '
                             '(xyxy pixels of the input image)')
    return np.ascontiguousarray(array)

