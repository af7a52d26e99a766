# Copyright (c) cllip_mm contributors. All rights reserved.
"""Aspect-preserving resize into a fixed canvas, centred, like ``tf.image.resize_with_pad``.

[paper] Pre-training pre-processes images by resizing the long side and padding, as
``tf.image.resize_with_pad`` does (the paper's Table A).
"""
from typing import Sequence, Tuple, Union

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from cllip_mm.registry import TRANSFORMS


def resize_with_pad_geometry(img_h: int, img_w: int, out_h: int,
                             out_w: int) -> Tuple[int, int, int, int]:
    """``(new_h, new_w, top, left)`` of ``tf.image.resize_with_pad``.

    TensorFlow scales by ``1 / ratio`` with ``ratio = max(w / out_w, h / out_h)``, resizes
    to ``floor(h / ratio) x floor(w / ratio)`` and puts ``floor((out - size / ratio) / 2)``
    rows / columns of padding on the top / left, i.e. half of the *unrounded* padding,
    rounded down (so a 60 x 100 image into 224 x 224 becomes 134 x 224 with 44 rows on
    top and 46 below, where ``(224 - 134) // 2`` would give 45). The rest goes to the
    bottom / right. Computed here in exact integer arithmetic (TensorFlow uses floats;
    the two agree except where a float rounding error crosses an integer).
    """
    if img_w * out_h >= img_h * out_w:  # width-limited: ratio = img_w / out_w
        new_w, new_h = out_w, (img_h * out_w) // img_w
        top = (out_h * img_w - img_h * out_w) // (2 * img_w)
        left = 0
    else:  # height-limited: ratio = img_h / out_h
        new_h, new_w = out_h, (img_w * out_h) // img_h
        left = (out_w * img_h - img_w * out_h) // (2 * img_h)
        top = 0
    return max(new_h, 1), max(new_w, 1), top, left


@TRANSFORMS.register_module()
class ResizeWithPad(BaseTransform):
    """Resize keeping the aspect ratio so that the image fits ``size``, then pad it to
    ``size`` with the image centred (``tf.image.resize_with_pad``); boxes move with it.

    mmcv's ``Resize(keep_ratio=True)`` followed by mmdet's ``Pad`` pads only at the bottom
    and right; this transform puts ``floor`` of half the padding on the top / left
    (:func:`resize_with_pad_geometry` gives TensorFlow's exact rounding) and the rest on
    the bottom / right. Images smaller than ``size`` are scaled up, as in TensorFlow.

    Boxes (``gt_bboxes``, numpy [N, 4] xyxy pixels) are scaled by the actual resize
    factors ``(new_w / w, new_h / h)`` and shifted by ``(left, top)``; no box is dropped
    (the whole image stays in the canvas).

    Required keys: ``img``; optional ``gt_bboxes``. Modified keys: ``img``,
    ``img_shape`` (the padded size ``size``), ``gt_bboxes``. Added keys:
    ``scale_factor`` ``(w_scale, h_scale)`` (mmcv's ``Resize``), ``keep_ratio`` (True),
    ``pad_shape`` (the padded image's shape, mmcv's / mmdet's ``Pad``) and ``pad_param``
    (float32 ``[top, bottom, left, right]``, mmyolo's ``LetterResize``).

    Args:
        size (int | tuple[int, int]): Output ``(h, w)`` (TensorFlow's and
            ``RandomResizedCropWithRegions``' order); an int makes a square.
        pad_val (float | sequence[float]): Padding value, one number or one per channel
            in the image's (BGR) order. Defaults to 0, TensorFlow's zeros.
        interpolation (str): Interpolation of :func:`mmcv.imresize`. Defaults to
            'bilinear', TensorFlow's default method.
        backend (str, optional): Backend of :func:`mmcv.imresize` ('cv2' or 'pillow');
            None uses mmcv's default.
    """

    def __init__(self,
                 size: Union[int, Sequence[int]],
                 pad_val: Union[float, Sequence[float]] = 0,
                 interpolation: str = 'bilinear',
                 backend: Union[str, None] = None) -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if len(self.size) != 2 or min(self.size) <= 0:
            raise ValueError(f'size must be a positive int or (h, w), got {size}')
        self.pad_val = pad_val if isinstance(pad_val, (int, float)) else tuple(pad_val)
        self.interpolation = interpolation
        self.backend = backend

    def transform(self, results: dict) -> dict:
        img = results['img']
        img_h, img_w = img.shape[:2]
        out_h, out_w = self.size
        new_h, new_w, top, left = resize_with_pad_geometry(img_h, img_w, out_h, out_w)
        bottom, right = out_h - new_h - top, out_w - new_w - left
        resized = mmcv.imresize(img, (new_w, new_h), interpolation=self.interpolation,
                                backend=self.backend)
        padded = mmcv.impad(resized, padding=(left, top, right, bottom), pad_val=self.pad_val)
        w_scale, h_scale = new_w / img_w, new_h / img_h
        results['img'] = padded
        results['img_shape'] = padded.shape[:2]
        results['pad_shape'] = padded.shape
        results['pad_param'] = np.array([top, bottom, left, right], dtype=np.float32)
        results['scale_factor'] = (w_scale, h_scale)
        results['keep_ratio'] = True

        if results.get('gt_bboxes') is not None:
            boxes = np.asarray(results['gt_bboxes'], dtype=np.float32).reshape(-1, 4)
            boxes = boxes * np.array([w_scale, h_scale] * 2, dtype=np.float32)
            boxes += np.array([left, top] * 2, dtype=np.float32)
            # Float rounding must not carry a box out of the resized image.
            boxes[:, 0::2] = boxes[:, 0::2].clip(left, left + new_w)
            boxes[:, 1::2] = boxes[:, 1::2].clip(top, top + new_h)
            results['gt_bboxes'] = boxes
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, pad_val={self.pad_val}, '
                f"interpolation='{self.interpolation}', backend={self.backend!r})")
