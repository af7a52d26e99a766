# Copyright (c) cllip_mm contributors. All rights reserved.
"""Image loading that checks the image against its annotation record.

EXIF orientation policy: images are decoded as displayed (mmcv's ``color_type='color'``
applies the EXIF orientation tag, with the cv2 and the pillow backends alike), so a
record's ``width`` / ``height`` and boxes refer to the displayed image, as in a browser
or an annotation tool. A record written against the stored pixels of a 90-degree
rotated photo then has its width and height swapped: that is reported as a size
mismatch that names the EXIF orientation. Annotations of the stored pixels need
``color_type='color_ignore_orientation'``.
"""
import logging
from typing import Optional

import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine.fileio import get
from mmengine.logging import print_log

from cllip_mm.registry import TRANSFORMS

#: Key set on the results of an image left out of evaluation (its short reason).
SKIP_KEY = 'skip_reason'


class BadImageError(ValueError):
    """An image cannot be used with its record (unreadable, or of another size).

    Attributes:
        reason (str): ``'unreadable image'`` or ``'size mismatch'``.
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@TRANSFORMS.register_module()
class LoadImageFromFileChecked(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` that checks the image against its record.

    Required keys: ``img_path``; optional ``ann_file``, ``ann_line`` (to name the
    record), ``width`` / ``height`` (the size the record says; checked),
    ``gt_bboxes`` (rescaled with ``size_mismatch='rescale'``), ``on_bad_record`` and
    ``test_mode`` (set by ``RegionTextDataset``).
    Added keys: ``img`` (BGR uint8 HWC by default), ``img_shape``, ``ori_shape`` (h, w);
    :data:`SKIP_KEY` for an image left out of evaluation.
    Modified keys: ``gt_bboxes``, ``width``, ``height`` (``size_mismatch='rescale'``).

    A bad image is one that cannot be read or decoded (missing, empty, corrupt, not an
    image) or whose size differs from the record's ``width`` / ``height``. Then:

    - ``on_bad_record='raise'`` (default): :class:`BadImageError` (a ``ValueError``)
      naming ``ann_file:ann_line``, the image and, for a size mismatch, both sizes.
    - ``on_bad_record='skip'`` in training: counted, logged, and None is returned so
      that the dataset draws another sample.
    - ``on_bad_record='skip'`` with ``test_mode``: counted, logged, and the sample goes
      on as a black image of the recorded size with ``results['skip_reason']`` set;
      the metrics leave it out and report how many they left out. (A test sample
      cannot be replaced, and dropping it would break the distributed evaluation's
      one-result-per-sample bookkeeping.)

    Counts (:attr:`num_skipped`, :attr:`num_rescaled`) are per process (each
    dataloader worker has its own copy of the pipeline).

    Args:
        size_mismatch (str): ``'error'``: a size mismatch is a bad image. ``'rescale'``:
            when the image is a uniformly rescaled copy of the recorded size (each
            side's scale predicts the other side within one pixel), rescale
            ``gt_bboxes`` to the image and go on; other mismatches stay bad images.
        *args, **kwargs: Arguments of mmcv's ``LoadImageFromFile``.
    """

    def __init__(self, *args, size_mismatch: str = 'error', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if size_mismatch not in ('error', 'rescale'):
            raise ValueError(
                f"size_mismatch must be 'error' or 'rescale', got {size_mismatch!r}")
        self.size_mismatch = size_mismatch
        self.num_skipped = 0
        self.num_rescaled = 0

    def transform(self, results: dict) -> Optional[dict]:
        error: Optional[Exception] = None
        try:
            loaded = super().transform(results)
            if loaded is not None and loaded.get('img') is None:
                error = ValueError('the decoder returned no image')
        except Exception as e:  # any read / decode failure
            error = e
            loaded = None
        if error is not None:
            return self._bad(
                results, f'{_where(results)}: field `image`: cannot read image '
                f'{results["img_path"]} ({type(error).__name__}: {error})',
                'unreadable image')
        if loaded is None:
            return None  # ``ignore_empty=True``, as in mmcv
        return self._check_size(loaded)

    def _check_size(self, results: dict) -> Optional[dict]:
        """Compare the decoded (h, w) with the record's ``height`` / ``width``."""
        rec_w, rec_h = results.get('width'), results.get('height')
        img_h, img_w = results['img'].shape[:2]
        if rec_w is None or rec_h is None or (rec_w, rec_h) == (img_w, img_h):
            return results
        if self.size_mismatch == 'rescale' and _same_aspect(rec_w, rec_h, img_w, img_h):
            sx, sy = img_w / rec_w, img_h / rec_h
            if results.get('gt_bboxes') is not None:
                bboxes = np.asarray(results['gt_bboxes'], dtype=np.float32).reshape(-1, 4)
                results['gt_bboxes'] = bboxes * np.array([sx, sy, sx, sy], np.float32)
            results['width'], results['height'] = img_w, img_h
            self.num_rescaled += 1
            return results
        message = (f'{_where(results)}: field `width`/`height`: the record says '
                   f'(w={rec_w}, h={rec_h}) but image {results["img_path"]} is '
                   f'(w={img_w}, h={img_h})')
        if (rec_w, rec_h) == (img_h, img_w):
            orientation = _exif_orientation(results['img_path'], self.backend_args)
            message += (f'; width and height are swapped (EXIF orientation '
                        f'{orientation}): boxes must refer to the image as displayed, '
                        'with its EXIF orientation applied')
        elif _same_aspect(rec_w, rec_h, img_w, img_h):
            message += ("; a rescaled copy: LoadImageFromFileChecked("
                        "size_mismatch='rescale') rescales its boxes")
        return self._bad(results, message, 'size mismatch')

    def _bad(self, results: dict, message: str, reason: str) -> Optional[dict]:
        if results.get('on_bad_record') != 'skip':
            raise BadImageError(message, reason)
        self.num_skipped += 1
        test_mode = bool(results.get('test_mode'))
        print_log(f'{"Left out of evaluation" if test_mode else "Skipped"} a bad image '
                  f'({self.num_skipped} so far in this process): {message}',
                  logger='current', level=logging.WARNING)
        if not test_mode:
            return None
        h, w = results.get('height') or 1, results.get('width') or 1
        results['img'] = np.zeros((h, w, 3), dtype=np.float32 if self.to_float32 else
                                  np.uint8)
        results['img_shape'] = results['ori_shape'] = (h, w)
        results[SKIP_KEY] = reason
        return results

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f', size_mismatch={self.size_mismatch!r})'


def _where(results: dict) -> str:
    where = results.get('ann_file', '<unknown annotation file>')
    if results.get('ann_line') is not None:
        where += f':{results["ann_line"]}'
    return where


def _same_aspect(rec_w: int, rec_h: int, img_w: int, img_h: int) -> bool:
    """Whether (img_w, img_h) is (rec_w, rec_h) scaled uniformly, up to rounding."""
    return abs(rec_h * img_w / rec_w - img_h) <= 1 and abs(rec_w * img_h / rec_h - img_w) <= 1


def _exif_orientation(img_path: str, backend_args: Optional[dict]) -> int:
    """The EXIF orientation tag (1-8) of an image file, 1 when absent or unreadable."""
    import io

    from PIL import Image
    try:
        with Image.open(io.BytesIO(get(img_path, backend_args=backend_args))) as img:
            return int(img.getexif().get(0x0112, 1))
    except Exception:  # an unreadable tag only weakens the message
        return 1
