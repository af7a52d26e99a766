# Copyright (c) cllip_mm contributors. All rights reserved.
"""Region-text records: reading, checking, and turning them into data infos.

The one home of the record checks. :class:`~cllip_mm.datasets.RegionTextDataset` (a JSON
Lines file), :class:`~cllip_mm.datasets.RegionTextShardStream` (one sample at a time) and
the ODVG converter (:mod:`cllip_mm.datasets.odvg`, whose records are checked here once
converted) all use it; it imports neither of them.

A record (docs/method.md, section 5.1)::

    {"image": "images/000001.jpg", "width": 640, "height": 480,
     "caption": "a red circle above a blue square",
     "regions": [{"bbox": [12.0, 30.5, 110.0, 140.0], "phrase": "red circle",
                  "score": 0.93}]}

Every problem is a :class:`BadRecordError` whose message starts with :func:`where`:
``<file or shard>:<line or sample key>: field `<field>` (image '<image>')``.
"""
import json
import math
import os.path as osp
from functools import partial
from numbers import Real
from typing import Any, Callable, Iterator, List, Optional, Protocol, Tuple, Union

import numpy as np
from mmengine.fileio import exists, get

#: Tolerance (pixels) for boxes that overshoot the image border; they are clipped.
BORDER_TOLERANCE = 1.0

#: A record's line: its 1-based line in a JSON Lines file, or its sample key in a shard.
Line = Union[int, str]


class BadRecordError(ValueError):
    """A record or region of the annotation file is invalid.

    Attributes:
        reason (str): A short, stable name of the problem (used to count skips).
        level (str): ``'record'`` (the whole image is dropped when skipping) or
            ``'region'`` (only that region is dropped).
        line_no (int | str, optional): The 1-based line of the record in its file (the
            sample key in a shard).
    """

    def __init__(self, message: str, reason: str, level: str = 'record',
                 line_no: Optional[Line] = None):
        super().__init__(message)
        self.reason = reason
        self.level = level
        self.line_no = line_no


def where(source: str, line: Line, field: str, image: Optional[str] = None) -> str:
    """The start of every record error: ``source:line: field `field` (image 'x.jpg')``.

    ``source`` is the annotation file (or shard), ``line`` the record's line (or sample
    key); the image part only when ``image`` is given.
    """
    location = f'{source}:{line}: field `{field}`'
    return location if image is None else f'{location} (image {image!r})'


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
        try:
            record = json.loads(raw.decode('utf-8'))
        except UnicodeDecodeError as e:
            error = BadRecordError(
                f'{where(ann_file, line_no, "<record>")}: not valid UTF-8 (byte '
                f'{raw[e.start:e.start + 1]!r} at column {e.start + 1}); save the file as '
                'UTF-8', 'invalid encoding', line_no=line_no)
        except json.JSONDecodeError as e:
            error = BadRecordError(
                f'{where(ann_file, line_no, "<record>")}: invalid JSON ({e.msg} at column '
                f'{e.colno})', 'invalid JSON', line_no=line_no)
        else:
            yield line_no, record
            continue
        if on_error is None:
            raise error
        on_error(error)


def is_finite_number(value: Any) -> bool:
    """A finite real number: an int or float, as JSON gives, or another ``numbers.Real``
    such as a numpy scalar (bools are not numbers here)."""
    return (isinstance(value, (int, float, Real)) and not isinstance(value, bool)
            and math.isfinite(value))


def is_positive_int(value: Any) -> bool:
    """An int > 0 (an integral float such as 640.0 is accepted too)."""
    return is_finite_number(value) and value > 0 and float(value).is_integer()


#: The image-level fields of a record, in the order they are checked: (field, test,
#: what the message says is expected).
IMAGE_FIELDS = (
    ('width', is_positive_int, 'a positive integer'),
    ('height', is_positive_int, 'a positive integer'),
    ('caption', lambda v: isinstance(v, str), 'a string'),
    ('regions', lambda v: isinstance(v, list), 'a list'),
)


class RecordConverter(Protocol):
    """Converts a record of another format (ODVG: :class:`~cllip_mm.datasets.odvg.
    ODVGRecordConverter`) into a region-text record, which is then checked as usual.

    Record-level problems raise :class:`BadRecordError`; region-level ones go to
    ``on_region_error`` and the region is dropped. Messages start with :func:`where`
    of ``source`` and ``line_no``.
    """

    def convert(self, raw: Any, line_no: Line,
                on_region_error: Callable[[BadRecordError], None],
                source: Optional[str] = None) -> dict:
        ...


def record_image(raw: Any, at: Callable[..., str], field: str) -> str:
    """The image name of record ``raw`` (a JSON object whose ``field`` is a non-empty
    string), else :class:`BadRecordError` located by ``at`` (a :func:`where` partial)."""
    if not isinstance(raw, dict):
        raise BadRecordError(
            f'{at("<record>")}: expected a JSON object, got {type(raw).__name__}',
            'wrong type')
    image = raw.get(field)
    if not isinstance(image, str) or not image:
        raise BadRecordError(
            f'{at(field)}: expected a non-empty string, got {image!r}',
            'missing field' if image is None else 'wrong type')
    return image


class RecordParser:
    """Checks one record at a time and turns it into a data info.

    The data info has ``img_path`` (``img_prefix`` joined with the record's ``image``),
    ``width``, ``height``, ``caption``, ``ann_line`` (the record's line), ``gt_bboxes``
    (float32 [N, 4], xyxy pixels), ``gt_phrases`` (list[str] of length N) and
    ``gt_scores`` (float32 [N]). ``bbox`` is ``[x1, y1, x2, y2]`` in absolute pixels
    with ``x2 > x1`` and ``y2 > y1``; ``score`` is optional (default 1.0). Boxes
    overshooting the image by at most :data:`BORDER_TOLERANCE` pixels are clipped;
    larger overshoots are errors.

    Args:
        on_bad (callable): Called with every :class:`BadRecordError` found (its
            ``line_no`` set): it raises it, or counts it and the bad region, or the
            whole record, is dropped.
        min_score (float, optional): Drop regions whose score is below it (counted in
            :attr:`num_low_score`).
        img_prefix (str): Joined with each record's ``image``.
        check_image_exists (bool): Check that every image file exists (a record error
            ``'missing image file'`` if not).
        backend_args (dict, optional): Arguments of the mmengine file backend.
        converter (RecordConverter, optional): Converts the records that :meth:`parse`
            is told are of its format (ODVG).
    """

    def __init__(self,
                 on_bad: Callable[[BadRecordError], None],
                 *,
                 min_score: Optional[float] = None,
                 img_prefix: str = '',
                 check_image_exists: bool = False,
                 backend_args: Optional[dict] = None,
                 converter: Optional[RecordConverter] = None) -> None:
        self.on_bad = on_bad
        self.min_score = min_score
        self.img_prefix = img_prefix
        self.check_image_exists = check_image_exists
        self.backend_args = backend_args
        self.converter = converter
        #: Regions dropped for a score below ``min_score``.
        self.num_low_score = 0

    def parse(self, raw: Any, source: str, line: Line,
              convert: bool = False) -> Optional[dict]:
        """The data info of record ``raw`` (line ``line`` of ``source``), or None when
        the record is bad and ``on_bad`` did not raise.

        ``convert``: ``raw`` is of the converter's format (ODVG).
        """

        def bad(error: BadRecordError) -> None:
            error.line_no = line
            self.on_bad(error)

        at = partial(where, source, line)
        try:
            if convert:
                if self.converter is None:
                    raise ValueError('RecordParser: convert=True needs a converter')
                raw = self.converter.convert(raw, line, bad, source=source)
            info = self._image_fields(raw, at, line)
        except BadRecordError as e:
            bad(e)
            return None

        bboxes, phrases, scores = [], [], []
        for i, region in enumerate(raw['regions']):
            try:
                bbox, phrase, score = self._region(region, i, info, at, raw['image'])
            except BadRecordError as e:
                bad(e)
                continue
            if self.min_score is not None and score < self.min_score:
                self.num_low_score += 1
                continue
            bboxes.append(bbox)
            phrases.append(phrase)
            scores.append(score)
        info['gt_bboxes'] = np.array(bboxes, dtype=np.float32).reshape(-1, 4)
        info['gt_phrases'] = phrases
        info['gt_scores'] = np.array(scores, dtype=np.float32)
        return info

    def _image_fields(self, raw: Any, at: Callable[..., str], line: Line) -> dict:
        image = record_image(raw, at, 'image')
        for field, ok, expected in IMAGE_FIELDS:
            if field not in raw:
                raise BadRecordError(f'{at(field, image)}: missing', 'missing field')
            if not ok(raw[field]):
                raise BadRecordError(
                    f'{at(field, image)}: expected {expected}, got {raw[field]!r}',
                    'wrong type')
        img_path = osp.join(self.img_prefix, image)
        if self.check_image_exists and not exists(img_path, backend_args=self.backend_args):
            raise BadRecordError(f'{at("image", image)}: file {img_path} not found',
                                 'missing image file')
        return dict(img_path=img_path, width=int(raw['width']), height=int(raw['height']),
                    caption=raw['caption'], ann_line=line)

    @staticmethod
    def _region(region: Any, i: int, info: dict, at: Callable[..., str],
                image: str) -> Tuple[List[float], str, float]:
        """``(bbox, phrase, score)`` of region ``i``: the box clipped to the image."""

        def bad(sub: str, msg: str, reason: str) -> BadRecordError:
            # a converted (ODVG) region names its source field
            field = region.get('_field', f'regions[{i}]') if isinstance(region, dict) \
                else f'regions[{i}]'
            return BadRecordError(f'{at(field + sub, image)}: {msg}', reason, 'region')

        if not isinstance(region, dict):
            raise bad('', f'expected a JSON object, got {region!r}', 'wrong type')
        for key in ('bbox', 'phrase'):
            if key not in region:
                raise bad(f'.{key}', 'missing', 'missing field')

        phrase = region['phrase']
        if not isinstance(phrase, str):
            raise bad('.phrase', f'expected a string, got {phrase!r}', 'wrong type')
        phrase = phrase.strip()
        if not phrase:
            raise bad('.phrase', 'empty phrase', 'empty phrase')

        score = region.get('score', 1.0)
        if not is_finite_number(score):
            raise bad('.score', f'expected a number, got {score!r}', 'wrong type')

        bbox = region['bbox']
        if not (isinstance(bbox, list) and len(bbox) == 4
                and all(map(is_finite_number, bbox))):
            raise bad('.bbox', f'expected a list of 4 numbers, got {bbox!r}', 'wrong type')
        x1, y1, x2, y2 = map(float, bbox)
        if x2 <= x1 or y2 <= y1:
            raise bad('.bbox', f'degenerate box {bbox} (need x2 > x1 and y2 > y1)',
                      'degenerate box')
        w, h, tol = info['width'], info['height'], BORDER_TOLERANCE
        if x1 < -tol or y1 < -tol or x2 > w + tol or y2 > h + tol:
            raise bad('.bbox', f'box {bbox} is outside the image of size (w={w}, h={h})',
                      'box outside image')
        x1, x2 = min(max(x1, 0.), w), min(max(x2, 0.), w)
        y1, y2 = min(max(y1, 0.), h), min(max(y2, 0.), h)
        if x2 <= x1 or y2 <= y1:
            raise bad('.bbox', f'box {bbox} is empty once clipped to the image of size '
                      f'(w={w}, h={h})', 'degenerate box')
        return [x1, y1, x2, y2], phrase, float(score)
