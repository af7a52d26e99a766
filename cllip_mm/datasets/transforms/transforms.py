# Copyright (c) cllip_mm contributors. All rights reserved.
"""Geometric and sampling transforms that keep regions in step with the image.

Convention (see docs/design.md): ``results['img']`` HWC; ``gt_bboxes`` numpy [N, 4] xyxy
in absolute pixels of the current image; ``gt_phrases`` list[str] and ``gt_scores``
[N] in the same order.
"""
import math
import re
from typing import Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform, RandomFlip
from mmcv.transforms.utils import cache_randomness

from cllip_mm.registry import TRANSFORMS

#: Per-region keys of the results dict, filtered together.
REGION_KEYS = ('gt_bboxes', 'gt_phrases', 'gt_scores', 'gt_labels')


def select_regions(results: dict, keep: np.ndarray) -> None:
    """Keep the regions ``keep`` (bool mask [N] or int indices) in every region key."""
    indices = np.flatnonzero(keep) if keep.dtype == bool else keep
    for key in REGION_KEYS:
        if key not in results:
            continue
        value = results[key]
        if isinstance(value, np.ndarray):
            results[key] = value[indices]
        else:
            results[key] = [value[i] for i in indices]


@TRANSFORMS.register_module()
class RandomResizedCropWithRegions(BaseTransform):
    """Crop a random area / aspect ratio (torchvision's sampling), resize it to
    ``size`` and move the boxes with it.

    Boxes are shifted into the crop, clipped to it and scaled to ``size``. A box
    that keeps less than ``min_area_ratio`` of its area inside the crop is dropped
    together with its phrase and score.

    Required keys: ``img``, optional ``gt_bboxes``, ``gt_phrases``, ``gt_scores``.
    Modified keys: ``img``, ``img_shape``, the region keys. Added keys:
    ``crop_bbox`` (xyxy of the crop in the input image), ``scale_factor`` (w, h).

    Args:
        size (int | tuple[int, int]): Output ``(h, w)`` (torchvision's order).
        scale (tuple[float, float]): Range of the crop's area, as a fraction of the
            image area.
        ratio (tuple[float, float]): Range of the crop's aspect ratio w / h, sampled
            log-uniformly.
        min_area_ratio (float): Minimum fraction of a box's area that must remain.
        max_attempts (int): Attempts before falling back to a centre crop.
        interpolation (str): Interpolation of :func:`mmcv.imresize`.
    """

    def __init__(self,
                 size: Union[int, Sequence[int]],
                 scale: Tuple[float, float] = (0.08, 1.0),
                 ratio: Tuple[float, float] = (3. / 4., 4. / 3.),
                 min_area_ratio: float = 0.3,
                 max_attempts: int = 10,
                 interpolation: str = 'bilinear') -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if len(self.size) != 2 or min(self.size) <= 0:
            raise ValueError(f'size must be an int or (h, w), got {size}')
        if not (0 < scale[0] <= scale[1] <= 1):
            raise ValueError(f'scale must satisfy 0 < min <= max <= 1, got {scale}')
        if not (0 < ratio[0] <= ratio[1]):
            raise ValueError(f'ratio must satisfy 0 < min <= max, got {ratio}')
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.min_area_ratio = min_area_ratio
        self.max_attempts = max_attempts
        self.interpolation = interpolation

    @cache_randomness
    def _sample_crop(self, img_h: int, img_w: int) -> Tuple[int, int, int, int]:
        """Return the crop ``(x1, y1, x2, y2)`` in integer pixels."""
        area = img_h * img_w
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(self.max_attempts):
            target_area = area * np.random.uniform(*self.scale)
            aspect = math.exp(np.random.uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= img_w and 0 < h <= img_h:
                y1 = np.random.randint(0, img_h - h + 1)
                x1 = np.random.randint(0, img_w - w + 1)
                return x1, y1, x1 + w, y1 + h
        # Fallback: the largest centre crop with an aspect ratio within ``ratio``.
        in_ratio = img_w / img_h
        if in_ratio < self.ratio[0]:
            w, h = img_w, int(round(img_w / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            w, h = int(round(img_h * self.ratio[1])), img_h
        else:
            w, h = img_w, img_h
        x1, y1 = (img_w - w) // 2, (img_h - h) // 2
        return x1, y1, x1 + w, y1 + h

    def transform(self, results: dict) -> dict:
        img = results['img']
        x1, y1, x2, y2 = self._sample_crop(*img.shape[:2])
        out_h, out_w = self.size
        crop_w, crop_h = x2 - x1, y2 - y1
        results['img'] = mmcv.imresize(
            img[y1:y2, x1:x2], (out_w, out_h), interpolation=self.interpolation)
        results['img_shape'] = results['img'].shape[:2]
        results['crop_bbox'] = np.array([x1, y1, x2, y2], dtype=np.float32)
        results['scale_factor'] = (out_w / crop_w, out_h / crop_h)

        if results.get('gt_bboxes') is not None:
            boxes = np.asarray(results['gt_bboxes'], dtype=np.float32).reshape(-1, 4)
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            clipped = boxes - np.array([x1, y1, x1, y1], dtype=np.float32)
            clipped[:, 0::2] = clipped[:, 0::2].clip(0, crop_w)
            clipped[:, 1::2] = clipped[:, 1::2].clip(0, crop_h)
            kept_area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
            keep = (kept_area > 0) & (kept_area >= self.min_area_ratio * area)
            scaled = clipped * np.array([out_w / crop_w, out_h / crop_h] * 2, np.float32)
            scaled[:, 0::2] = scaled[:, 0::2].clip(0, out_w)  # float rounding
            scaled[:, 1::2] = scaled[:, 1::2].clip(0, out_h)
            results['gt_bboxes'] = scaled
            select_regions(results, keep)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, scale={self.scale}, '
                f'ratio={self.ratio}, min_area_ratio={self.min_area_ratio}, '
                f'max_attempts={self.max_attempts}, '
                f"interpolation='{self.interpolation}')")


@TRANSFORMS.register_module()
class RandomZoomOutWithRegions(BaseTransform):
    """Place the image at a random spot of a larger canvas (SSD's "zoom out", mmdet's
    ``Expand``), so objects get smaller; boxes move with the image.

    mmdet's ``Expand`` needs ``gt_bboxes`` as a box structure; this one keeps the numpy
    [N, 4] xyxy of the region pipeline. Put it before the crop, which brings the canvas
    back to the network size.

    Required keys: ``img``, optional ``gt_bboxes``. Modified keys: ``img``, ``img_shape``,
    ``gt_bboxes``.

    Args:
        prob (float): Probability of zooming out.
        ratio_range (tuple[float, float]): Range of the canvas side / the image side.
        fill (str | sequence[int]): 'mean' (the image's mean colour, so no new colour
            appears next to coloured objects) or a constant colour in the image's order.
    """

    def __init__(self,
                 prob: float = 0.5,
                 ratio_range: Tuple[float, float] = (1.0, 2.0),
                 fill: Union[str, Sequence[int]] = 'mean') -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        if not 1 <= ratio_range[0] <= ratio_range[1]:
            raise ValueError(f'ratio_range must satisfy 1 <= min <= max, got {ratio_range}')
        if isinstance(fill, str) and fill != 'mean':
            raise ValueError(f"fill must be 'mean' or a colour, got {fill!r}")
        self.prob = prob
        self.ratio_range = tuple(ratio_range)
        self.fill = fill

    @cache_randomness
    def _sample(self, img_h: int, img_w: int) -> Optional[Tuple[int, int, int, int]]:
        """``(canvas_h, canvas_w, top, left)`` or None (no zoom-out)."""
        if np.random.rand() >= self.prob:
            return None
        ratio = np.random.uniform(*self.ratio_range)
        canvas_h, canvas_w = int(round(img_h * ratio)), int(round(img_w * ratio))
        top = np.random.randint(0, canvas_h - img_h + 1)
        left = np.random.randint(0, canvas_w - img_w + 1)
        return canvas_h, canvas_w, top, left

    def transform(self, results: dict) -> dict:
        img = results['img']
        sample = self._sample(*img.shape[:2])
        if sample is None:
            return results
        canvas_h, canvas_w, top, left = sample
        if isinstance(self.fill, str):
            colour = img.reshape(-1, *img.shape[2:]).mean(axis=0)
        else:
            colour = np.asarray(self.fill)
        canvas = np.empty((canvas_h, canvas_w, *img.shape[2:]), dtype=img.dtype)
        canvas[...] = np.round(colour).astype(img.dtype)
        canvas[top:top + img.shape[0], left:left + img.shape[1]] = img
        results['img'] = canvas
        results['img_shape'] = canvas.shape[:2]
        if results.get('gt_bboxes') is not None:
            boxes = np.asarray(results['gt_bboxes'], dtype=np.float32).reshape(-1, 4)
            results['gt_bboxes'] = boxes + np.array([left, top, left, top], dtype=np.float32)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, '
                f'ratio_range={self.ratio_range}, fill={self.fill!r})')


_LEFT_RIGHT = re.compile(r'\b(left|right)\b', re.IGNORECASE)


def swap_left_right(text: str) -> str:
    """Swap the words "left" and "right", keeping their case ("Left" -> "Right")."""

    def swap(match: re.Match) -> str:
        word = match.group(0)
        new = 'right' if word.lower() == 'left' else 'left'
        if word.isupper():
            return new.upper()
        return new.capitalize() if word[0].isupper() else new

    return _LEFT_RIGHT.sub(swap, text)


@TRANSFORMS.register_module()
class RandomFlipWithPhrases(RandomFlip):
    """mmcv's ``RandomFlip`` (which flips ``img`` and ``gt_bboxes``) that also swaps
    "left" and "right" in ``gt_phrases`` and ``caption`` when the flip is horizontal
    (or diagonal), as GLIP does. Arguments are those of ``RandomFlip``.
    """

    def _flip(self, results: dict) -> None:
        super()._flip(results)
        if results['flip_direction'] in ('horizontal', 'diagonal'):
            if 'gt_phrases' in results:
                results['gt_phrases'] = [swap_left_right(p) for p in results['gt_phrases']]
            if 'caption' in results:
                results['caption'] = swap_left_right(results['caption'])


@TRANSFORMS.register_module()
class SampleRegions(BaseTransform):
    """Keep a random subset of ``max_regions`` regions when an image has more.

    The kept regions stay in their original order. Modified keys: ``gt_bboxes``,
    ``gt_phrases``, ``gt_scores`` (and ``gt_labels`` if present).
    """

    def __init__(self, max_regions: int = 8) -> None:
        if max_regions <= 0:
            raise ValueError(f'max_regions must be positive, got {max_regions}')
        self.max_regions = max_regions

    @cache_randomness
    def _sample(self, num: int) -> Optional[np.ndarray]:
        if num <= self.max_regions:
            return None
        return np.sort(np.random.choice(num, self.max_regions, replace=False))

    def transform(self, results: dict) -> dict:
        regions = results.get('gt_bboxes', results.get('gt_phrases', ()))
        num = 0 if regions is None else len(regions)
        keep = self._sample(num)
        if keep is not None:
            select_regions(results, keep)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(max_regions={self.max_regions})'
