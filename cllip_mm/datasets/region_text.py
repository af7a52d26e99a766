# Copyright (c) cllip_mm contributors. All rights reserved.
"""Region-text dataset in the JSON Lines format of docs/method.md (section 5.1) or mmdet's ODVG."""
import json
import logging
import math
import os.path as osp
from collections import Counter
from numbers import Real
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.fileio import exists, get
from mmengine.logging import print_log

from cllip_mm.registry import DATASETS

#: Tolerance (pixels) for boxes that overshoot the image border; they are clipped.
BORDER_TOLERANCE = 1.0


class BadRecordError(ValueError):
    """A record or region of the annotation file is invalid.

    Attributes:
        reason (str): A short, stable name of the problem (used to count skips).
        level (str): ``'record'`` (the whole image is dropped when skipping) or
            ``'region'`` (only that region is dropped).
        line_no (int, optional): The 1-based line of the record in its file.
    """

    def __init__(self, message: str, reason: str, level: str = 'record',
                 line_no: Optional[int] = None):
        super().__init__(message)
        self.reason = reason
        self.level = level
        self.line_no = line_no


_UTF8_BOM = b'\xef\xbb\xbf'
_UTF16_BOMS = (b'\xff\xfe', b'\xfe\xff')


def iter_json_lines(ann_file: str,
                    backend_args: Optional[dict] = None,
                    on_error: Optional[Callable[[BadRecordError], None]] = None
                    ) -> Iterator[Tuple[int, Any]]:
    """Yield ``(line_no, record)`` for every non-blank line of a JSON Lines file.

    The one reader of JSON Lines annotation files (region-text and ODVG). Tolerates
    what editors and Windows tools write: a UTF-8 byte-order mark (at the start of the
    file, or of a line when files were concatenated), CRLF or bare-CR line endings, and
    blank lines (skipped; ``line_no`` still counts them, 1-based). Lines are split on
    ``\\n`` only, so U+2028 / U+0085 inside JSON strings do not break a record.

    Args:
        ann_file (str): Path or URI, read through the mmengine file backend.
        backend_args (dict, optional): Arguments of the mmengine file backend.
        on_error (callable, optional): Called with a :class:`BadRecordError`
            (``reason`` ``'invalid JSON'`` or ``'invalid encoding'``, naming the file,
            the line and the column) for a line that is not valid UTF-8 JSON; the line
            is then skipped. Without it the error is raised.

    Raises:
        ValueError: If the file is UTF-16 encoded (always; it has no valid line).
    """
    data = get(ann_file, backend_args=backend_args)
    if data.startswith(_UTF16_BOMS):
        raise ValueError(f'{ann_file}: the file is UTF-16 encoded (it starts with a '
                         'UTF-16 byte-order mark); save it as UTF-8 JSON Lines')
    # Classic Mac OS line endings: a file with CRs and no LF.
    sep = b'\r' if b'\n' not in data and b'\r' in data else b'\n'
    for line_no, raw in enumerate(data.split(sep), start=1):
        if raw.startswith(_UTF8_BOM):
            raw = raw[len(_UTF8_BOM):]
        raw = raw.rstrip(b'\r')
        if not raw.strip():
            continue
        where = f'{ann_file}:{line_no}: field `<record>`'
        try:
            line = raw.decode('utf-8')
            record = json.loads(line)
        except UnicodeDecodeError as e:
            error = BadRecordError(
                f'{where}: not valid UTF-8 (byte {raw[e.start:e.start + 1]!r} at column '
                f'{e.start + 1}); save the file as UTF-8', 'invalid encoding',
                line_no=line_no)
        except json.JSONDecodeError as e:
            error = BadRecordError(f'{where}: invalid JSON ({e.msg} at column {e.colno})',
                                   'invalid JSON', line_no=line_no)
        else:
            yield line_no, record
            continue
        if on_error is None:
            raise error
        on_error(error)


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
    tuple). The file is read by :func:`iter_json_lines` (UTF-8, BOM and CRLF tolerant).

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
        self._num_low_score = 0
        self._odvg = self._odvg_converter(kwargs, label_map_file, caption_policy)
        self._is_odvg: Optional[bool] = None  # decided by the file's first record
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    # ------------------------------------------------------------------ loading
    def load_data_list(self) -> List[dict]:
        """Parse every line of ``ann_file``; set ``classes`` if not given."""
        self.skip_counts = Counter()
        self._num_low_score = 0
        self.bad_records = []
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
        """Validate one record and convert it to a data info.

        Returns None when the record is skipped (``on_bad_record='skip'``).
        """
        try:
            raw_data_info = self._from_odvg(raw_data_info, line_no)
            info = self._parse_image_fields(raw_data_info, line_no)
        except BadRecordError as e:
            e.line_no = line_no
            self._bad(e)
            return None

        image = raw_data_info['image']
        bboxes, phrases, scores = [], [], []
        for i, region in enumerate(raw_data_info['regions']):
            try:
                bbox, phrase, score = self._parse_region(region, i, info, line_no, image)
            except BadRecordError as e:
                e.line_no = line_no
                self._bad(e)
                continue
            if self.min_score is not None and score < self.min_score:
                self._num_low_score += 1
                continue
            bboxes.append(bbox)
            phrases.append(phrase)
            scores.append(score)
        info['gt_bboxes'] = np.array(bboxes, dtype=np.float32).reshape(-1, 4)
        info['gt_phrases'] = phrases
        info['gt_scores'] = np.array(scores, dtype=np.float32)
        return info

    def _parse_image_fields(self, raw: Any, line_no: int) -> dict:
        if not isinstance(raw, dict):
            raise BadRecordError(
                self._where(line_no, '<record>') +
                f': expected a JSON object, got {type(raw).__name__}', 'wrong type')
        image = raw.get('image')
        if not isinstance(image, str) or not image:
            raise BadRecordError(
                self._where(line_no, 'image') + ': expected a non-empty string, got '
                f'{image!r}', 'missing field' if image is None else 'wrong type')

        # one test of the valid record (checked per sample by the shard stream); the
        # field-by-field checks, which build the error message, only when it fails
        if not (_is_positive_int(raw.get('width')) and _is_positive_int(raw.get('height'))
                and isinstance(raw.get('caption'), str)
                and isinstance(raw.get('regions'), list)):
            self._check_image_fields(raw, line_no, image)
        img_path = osp.join(self.data_prefix['img'], image)
        if self.check_image_exists and not exists(img_path, backend_args=self.backend_args):
            raise BadRecordError(
                self._where(line_no, 'image', image) + f': file {img_path} not found',
                'missing image file')
        return dict(img_path=img_path, width=int(raw['width']),
                    height=int(raw['height']), caption=raw['caption'], ann_line=line_no)

    def _check_image_fields(self, raw: dict, line_no: int, image: str) -> None:
        """Raise the :class:`BadRecordError` of the first bad image-level field."""

        def check(field: str, ok, expected: str):
            if field not in raw:
                raise BadRecordError(
                    self._where(line_no, field, image) + ': missing', 'missing field')
            if not ok(raw[field]):
                raise BadRecordError(
                    self._where(line_no, field, image) +
                    f': expected {expected}, got {raw[field]!r}', 'wrong type')

        check('width', _is_positive_int, 'a positive integer')
        check('height', _is_positive_int, 'a positive integer')
        check('caption', lambda v: isinstance(v, str), 'a string')
        check('regions', lambda v: isinstance(v, list), 'a list')
        raise AssertionError(f'{self._where(line_no, "<record>", image)}: no bad field')

    def _parse_region(self, region: Any, i: int, info: dict, line_no: int,
                      image: str) -> Tuple[List[float], str, float]:
        # Run for every region of every record (per sample by the shard stream): the
        # checks are written out, the error messages built only on failure.
        def bad(sub: str, msg: str, reason: str):
            # an ODVG region names its source field
            field = region.get('_field', f'regions[{i}]') if isinstance(region, dict) \
                else f'regions[{i}]'
            return BadRecordError(
                self._where(line_no, field + sub, image) + ': ' + msg, reason, 'region')

        if not isinstance(region, dict):
            raise bad('', f'expected a JSON object, got {region!r}', 'wrong type')
        if 'bbox' not in region:
            raise bad('.bbox', 'missing', 'missing field')
        if 'phrase' not in region:
            raise bad('.phrase', 'missing', 'missing field')

        phrase = region['phrase']
        if not isinstance(phrase, str):
            raise bad('.phrase', f'expected a string, got {phrase!r}', 'wrong type')
        phrase = phrase.strip()
        if not phrase:
            raise bad('.phrase', 'empty phrase', 'empty phrase')

        score = region.get('score', 1.0)
        if not _is_finite_number(score):
            raise bad('.score', f'expected a number, got {score!r}', 'wrong type')

        bbox = region['bbox']
        if not (isinstance(bbox, list) and len(bbox) == 4):
            raise bad('.bbox', f'expected a list of 4 numbers, got {bbox!r}',
                      'wrong type')
        x1, y1, x2, y2 = bbox
        # four floats with a finite sum are finite (the usual case, tested without a
        # call per coordinate); anything else is tested coordinate by coordinate
        if not (type(x1) is float and type(y1) is float and type(x2) is float
                and type(y2) is float and math.isfinite(x1 + y1 + x2 + y2)):
            if not (_is_finite_number(x1) and _is_finite_number(y1)
                    and _is_finite_number(x2) and _is_finite_number(y2)):
                raise bad('.bbox', f'expected a list of 4 numbers, got {bbox!r}',
                          'wrong type')
            x1, y1, x2, y2 = float(x1), float(y1), float(x2), float(y2)
        if x2 <= x1 or y2 <= y1:
            raise bad('.bbox', f'degenerate box {bbox} (need x2 > x1 and y2 > y1)',
                      'degenerate box')
        w, h, tol = info['width'], info['height'], BORDER_TOLERANCE
        if x1 < -tol or y1 < -tol or x2 > w + tol or y2 > h + tol:
            raise bad('.bbox', f'box {bbox} is outside the image of size '
                      f'(w={w}, h={h})', 'box outside image')
        # clip to [0, w] x [0, h] (min(max(v, 0.), w), without the calls)
        x1 = 0. if x1 < 0. else (w if x1 > w else x1)
        x2 = 0. if x2 < 0. else (w if x2 > w else x2)
        y1 = 0. if y1 < 0. else (h if y1 > h else y1)
        y2 = 0. if y2 < 0. else (h if y2 > h else y2)
        if x2 <= x1 or y2 <= y1:
            raise bad('.bbox', f'box {bbox} is empty once clipped to the image of size '
                      f'(w={w}, h={h})', 'degenerate box')
        return [x1, y1, x2, y2], phrase, float(score)

    # ------------------------------------------------------------------ ODVG
    def _odvg_converter(self, kwargs: dict, label_map_file: Optional[str],
                        caption_policy: Optional[dict]):
        from .odvg import ODVGRecordConverter, load_coco_captions, load_label_map

        def resolve(path):
            return path if osp.isabs(path) else osp.join(kwargs.get('data_root') or '', path)

        label_map = None
        if label_map_file is not None:
            label_map = load_label_map(resolve(label_map_file), self.backend_args)
            metainfo = dict(kwargs.get('metainfo') or {})
            if metainfo.get('classes') is None:
                metainfo['classes'] = tuple(label_map[k] for k in sorted(label_map))
                kwargs['metainfo'] = metainfo
        captions_file = (caption_policy or {}).get('captions_file')
        captions = None if captions_file is None else load_coco_captions(
            resolve(captions_file), self.backend_args)
        # ann_file is set once BaseDataset has joined it with data_root
        return ODVGRecordConverter('', label_map, caption_policy, captions)

    def _from_odvg(self, raw: Any, line_no: int) -> Any:
        """``raw`` converted to this format if the file is ODVG, else ``raw``."""
        if self._is_odvg is None:  # the file's first record (odvg imports this module)
            from .odvg import is_odvg_record
            self._is_odvg = is_odvg_record(raw)
            self._odvg.ann_file = self.ann_file
        return self._odvg.convert(raw, line_no, self._bad) if self._is_odvg else raw

    # ------------------------------------------------------------ bad records
    def _where(self, line_no: int, field: str, image: Optional[str] = None) -> str:
        where = f'{self.ann_file}:{line_no}: field `{field}`'
        return where if image is None else where + f' (image {image!r})'

    def _bad(self, error: BadRecordError) -> None:
        if self.on_bad_record == 'raise':
            raise error
        self.skip_counts[f'{error.level}: {error.reason}'] += 1
        self.bad_records.append(dict(line=error.line_no, level=error.level,
                                     reason=error.reason, message=str(error)))

    def _log_skips(self, num_kept: int) -> None:
        if self._num_low_score:
            print_log(
                f'{self.__class__.__name__}({self.ann_file}): dropped '
                f'{self._num_low_score} regions with score < {self.min_score}',
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


def _is_positive_int(value: Any) -> bool:
    """An int > 0 (an integral float such as 640.0 is accepted too)."""
    return _is_finite_number(value) and value > 0 and float(value).is_integer()


def _is_finite_number(value: Any) -> bool:
    # JSON numbers are int or float: test those exactly first (``isinstance`` against
    # the ``Real`` ABC costs a microsecond, per coordinate of every region)
    if type(value) is float or type(value) is int:
        return math.isfinite(value)
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
