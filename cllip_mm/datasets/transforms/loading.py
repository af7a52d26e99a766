# Copyright (c) cllip_mm contributors. All rights reserved.
"""Image loading that reports which annotation record a bad image comes from."""
import logging
from typing import Optional

from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log

from cllip_mm.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadImageFromFileChecked(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` with clear errors for missing or corrupt images.

    Required keys: ``img_path``; optional ``ann_file``, ``ann_line`` (to name the
    record) and ``on_bad_record`` (set by ``RegionTextDataset``).
    Added keys: ``img`` (BGR uint8 HWC by default), ``img_shape``, ``ori_shape`` (h, w).

    When the image cannot be read, raises ``ValueError`` naming the image and
    ``ann_file:ann_line``; or, if ``results['on_bad_record'] == 'skip'``, counts and
    logs the image and returns None so that the dataset fetches another sample.
    The count (:attr:`num_skipped`) is per process (each dataloader worker has its
    own copy of the pipeline).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.num_skipped = 0

    def transform(self, results: dict) -> Optional[dict]:
        error: Optional[Exception] = None
        try:
            loaded = super().transform(results)
            if loaded is not None and loaded.get('img') is None:
                error = ValueError('the decoder returned no image')
        except Exception as e:  # any read / decode failure
            error = e
            loaded = None
        if error is None:
            return loaded  # None only with ``ignore_empty=True``, as in mmcv

        where = results.get('ann_file', '<unknown annotation file>')
        if results.get('ann_line') is not None:
            where += f':{results["ann_line"]}'
        message = (f'{where}: field `image`: cannot read image {results["img_path"]} '
                   f'({type(error).__name__}: {error})')
        if results.get('on_bad_record') == 'skip':
            self.num_skipped += 1
            print_log(f'Skipped an unreadable image ({self.num_skipped} so far in this '
                      f'process): {message}', logger='current', level=logging.WARNING)
            return None
        raise ValueError(message) from error
