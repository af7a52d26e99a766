# Copyright (c) cllip_mm contributors. All rights reserved.
"""Region-text dataset in the JSON Lines format of docs/method.md (section 5.1) or mmdet's ODVG."""
import logging
from collections import Counter
from typing import Any, List, Optional, Sequence

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from cllip_mm.registry import DATASETS
from .odvg import build_odvg_converter, is_odvg_record
from .records import BORDER_TOLERANCE, BadRecordError, RecordParser, iter_json_lines

# the record checks live in .records; BadRecordError, iter_json_lines and
# BORDER_TOLERANCE are re-exported here for existing imports
__all__ = ['RegionTextDataset', 'BadRecordError', 'iter_json_lines', 'BORDER_TOLERANCE']


@DATASETS.register_module()
class RegionTextDataset(BaseDataset):
    """Images with a caption and region-phrase annotations, one JSON object per line.

    Each line of ``ann_file`` (relative to ``data_root``) looks like::

        {"image": "images/000001.jpg", "width": 640, "height": 480,
         "caption": "a red circle above a blue square",
         "regions": [{"bbox": [12.0, 30.5, 110.0, 140.0], "phrase": "red circle",
                      "score": 0.93}]}

    ``bbox`` is ``[x1, y1, x2, y2]`` in absolute pixels with ``x2 > x1`` and ``y2 > y1``;
    ``score`` is optional (default 1.0). Boxes overshooting the image by at most
    :data:`BORDER_TOLERANCE` pixels are clipped; larger overshoots are errors.

    Each record becomes a data info with ``img_path``, ``width``, ``height``,
    ``caption``, ``gt_bboxes`` (float32 [N, 4], xyxy pixels), ``gt_phrases``
    (list[str] of length N), ``gt_scores`` (float32 [N]) and ``ann_line`` (1-based line
    of the record); :meth:`get_data_info` adds ``ann_file``, ``on_bad_record``,
    ``test_mode`` and, with ``return_vocabulary``, ``vocabulary`` (the ``classes``
    tuple). The file is read by :func:`iter_json_lines` (UTF-8, BOM and CRLF tolerant),
    its records checked by :class:`~cllip_mm.datasets.records.RecordParser`.

    ``metainfo['classes']`` is the phrase vocabulary: the ``classes`` given in
    ``metainfo``, else the sorted distinct phrases of the file (after ``min_score``
    filtering; known once the dataset is fully initialised), or with ``label_map_file``
    the label map's names in label order.

    The format is detected per file from its first record: mmdet's ODVG lines (grounding
    and detection records, see :mod:`cllip_mm.datasets.odvg`) are converted to the
    format above and validated the same way; errors name the ODVG field.

    Args:
        ann_file (str): The JSON Lines annotation file.
        min_score (float, optional): Drop regions whose score is below it.
        on_bad_record (str): ``'raise'`` a :class:`ValueError` naming the file, line,
            field and image; or ``'skip'`` the bad region (or the whole record when the
            image-level fields or the image file are bad), counting skips per reason
            (:attr:`skip_counts`, :attr:`bad_records`, ``metainfo
            ['num_skipped_records']``) and logging one summary line. With ``'skip'``,
            images found bad at load time (unreadable, or not of the recorded size; see
            ``LoadImageFromFileChecked``) are replaced by another sample in training
            and left out of the metrics, counted in their report, at test time.
        check_image_exists (bool): Check at parse time that every image file exists.
        return_vocabulary (bool): Put ``vocabulary`` in each data info (for
            evaluation sets, so that regions can be classified).
        sample_images (int, optional): Keep a random sample of this many records
            (without replacement, in file order; e.g. the 2K GRIT images of the
            paper's region retrieval). None keeps all.
        sample_seed (int): Seed of that sample.
        backend_args (dict, optional): Arguments of the mmengine file backend.
        label_map_file (str, optional): ODVG label map (``{"0": "person", ...}``,
            relative to ``data_root``) naming the ``label`` of detection records.
        caption_policy (dict, optional): How ODVG detection records get a caption
            (:data:`cllip_mm.datasets.odvg.DEFAULT_CAPTION_POLICY`); its
            ``captions_file`` is relative to ``data_root``.
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset`. ``filter_cfg``
            may hold ``filter_empty_gt=True`` to drop images without regions (not in
            ``test_mode``).
    """

    METAINFO: dict = dict()

    def __init__(self,
                 ann_file: str,
                 *,
                 data_prefix: dict = dict(img=''),
                 min_score: Optional[float] = None,
                 on_bad_record: str = 'raise',
                 check_image_exists: bool = True,
                 return_vocabulary: bool = False,
                 sample_images: Optional[int] = None,
                 sample_seed: int = 0,
                 backend_args: Optional[dict] = None,
                 label_map_file: Optional[str] = None,
                 caption_policy: Optional[dict] = None,
                 **kwargs) -> None:
        if on_bad_record not in ('raise', 'skip'):
            raise ValueError(
                f"on_bad_record must be 'raise' or 'skip', got {on_bad_record!r}")
        if 'img' not in data_prefix:
            raise ValueError(f"data_prefix must have the key 'img', got {data_prefix}")
        self.min_score = min_score
        self.on_bad_record = on_bad_record
        self.check_image_exists = check_image_exists
        self.return_vocabulary = return_vocabulary
        if sample_images is not None and sample_images < 1:
            raise ValueError(f'sample_images must be positive, got {sample_images}')
        self.sample_images = sample_images
        self.sample_seed = sample_seed
        self.backend_args = backend_args
        #: Number of skipped records / regions per reason (``on_bad_record='skip'``).
        self.skip_counts: Counter = Counter()
        #: One dict (``line``, ``level``, ``reason``, ``message``) per skipped item.
        self.bad_records: List[dict] = []
        #: The record checks of ``ann_file`` (made when its first record is read).
        self.parser: Optional[RecordParser] = None
        self._odvg = build_odvg_converter(label_map_file, caption_policy,
                                          kwargs.get('data_root'), backend_args)
        if self._odvg.label_map is not None:
            metainfo = dict(kwargs.get('metainfo') or {})
            if metainfo.get('classes') is None:  # the label map's names in label order
                label_map = self._odvg.label_map
                metainfo['classes'] = tuple(label_map[k] for k in sorted(label_map))
                kwargs['metainfo'] = metainfo
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    # ------------------------------------------------------------------ loading
    def load_data_list(self) -> List[dict]:
        """Parse every line of ``ann_file``; set ``classes`` if not given."""
        self.skip_counts = Counter()
        self.bad_records = []
        self.parser = None  # made for this file by parse_data_info
        data_list = []
        for line_no, raw in iter_json_lines(self.ann_file, self.backend_args, self._bad):
            data_info = self.parse_data_info(raw, line_no)
            if data_info is not None:
                data_list.append(data_info)
        self._log_skips(len(data_list))
        if self.sample_images is not None and self.sample_images < len(data_list):
            rng = np.random.default_rng(self.sample_seed)
            keep = np.sort(rng.choice(len(data_list), self.sample_images, replace=False))
            data_list = [data_list[i] for i in keep]
        # Read by the metrics' report of the images left out of an evaluation.
        self._metainfo['num_skipped_records'] = sum(
            v for k, v in self.skip_counts.items() if k.startswith('record'))

        if self._metainfo.get('classes') is None:
            phrases = {p for info in data_list for p in info['gt_phrases']}
            self._metainfo['classes'] = tuple(sorted(phrases))
        else:
            self._metainfo['classes'] = tuple(self._metainfo['classes'])
        return data_list

    def parse_data_info(self, raw_data_info: Any, line_no: int = 0) -> Optional[dict]:
        """Validate one record and convert it to a data info (see
        :class:`~cllip_mm.datasets.records.RecordParser`).

        Returns None when the record is skipped (``on_bad_record='skip'``).
        """
        if self.parser is None:
            # the file's format is decided by its first record
            self.parser = RecordParser(
                self._bad, min_score=self.min_score, img_prefix=self.data_prefix['img'],
                check_image_exists=self.check_image_exists, backend_args=self.backend_args,
                converter=self._odvg if is_odvg_record(raw_data_info) else None)
        return self.parser.parse(raw_data_info, self.ann_file, line_no,
                                 convert=self.parser.converter is not None)

    # ------------------------------------------------------------ bad records
    def _bad(self, error: BadRecordError) -> None:
        if self.on_bad_record == 'raise':
            raise error
        self.skip_counts[f'{error.level}: {error.reason}'] += 1
        self.bad_records.append(dict(line=error.line_no, level=error.level,
                                     reason=error.reason, message=str(error)))

    def _log_skips(self, num_kept: int) -> None:
        num_low_score = self.parser.num_low_score if self.parser is not None else 0
        if num_low_score:
            print_log(
                f'{self.__class__.__name__}({self.ann_file}): dropped '
                f'{num_low_score} regions with score < {self.min_score}',
                logger='current', level=logging.INFO)
        if not self.skip_counts:
            return
        num_records = sum(v for k, v in self.skip_counts.items()
                          if k.startswith('record'))
        num_regions = sum(self.skip_counts.values()) - num_records
        reasons = ', '.join(f'{k}: {v}' for k, v in sorted(self.skip_counts.items()))
        print_log(
            f'{self.__class__.__name__}({self.ann_file}): skipped {num_records} bad '
            f'records and {num_regions} bad regions, kept {num_kept} records '
            f'({reasons})', logger='current', level=logging.WARNING)

    # --------------------------------------------------------------- access
    def filter_data(self) -> List[dict]:
        """Drop images without regions if ``filter_cfg.filter_empty_gt`` (training)."""
        if self.test_mode or not self.filter_cfg \
                or not self.filter_cfg.get('filter_empty_gt', False):
            return self.data_list
        return [info for info in self.data_list if len(info['gt_phrases']) > 0]

    def get_data_info(self, idx: int) -> dict:
        """The data info of ``idx`` plus ``ann_file``, ``on_bad_record``, ``test_mode``
        and, with ``return_vocabulary``, ``vocabulary``."""
        data_info = super().get_data_info(idx)
        data_info['ann_file'] = self.ann_file
        data_info['on_bad_record'] = self.on_bad_record
        # With 'skip', a bad image is replaced by another sample in training, and left
        # out of the metrics at test time (LoadImageFromFileChecked).
        data_info['test_mode'] = self.test_mode
        if self.return_vocabulary:
            data_info['vocabulary'] = self._metainfo['classes']
        return data_info

    def get_cat_ids(self, idx: int) -> List[int]:
        """Indices in ``classes`` of the phrases of image ``idx``."""
        if getattr(self, '_class_index', None) is None:
            self._class_index = {c: i for i, c in enumerate(self._metainfo['classes'])}
        index = self._class_index
        phrases: Sequence[str] = self.get_data_info(idx)['gt_phrases']
        return sorted({index[p] for p in phrases if p in index})

