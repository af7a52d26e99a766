# Copyright (c) cllip_mm contributors. All rights reserved.
"""Boxes written as text: integer coordinates in a fixed 0-999 frame (Ferret / Shikra style).

The frame
---------
A box ``[x1, y1, x2, y2]`` (xyxy, pixels of an image of size ``width`` x ``height``) is first
normalised by the image size (``x / width``, ``y / height``, in [0, 1], the frame of
:mod:`cllip_mm.structures`) and then quantised to :data:`NUM_BINS` = 1000 bins per axis:
``q = min(floor(v * 1000), 999)``, an integer in 0..999. The text is ``[q1,q2,q3,q4]`` (no
spaces: fewer tokens; :func:`parse_boxes` accepts any whitespace). The frame is the same
for every image whatever its size or aspect ratio, and is unaffected by resizing the
image without keeping the aspect ratio (what the MLLM's image preprocessing does).

Decoding reads a bin as its centre, ``v = (q + 0.5) / 1000``, so a normalised coordinate
survives ``box -> text -> box`` to within ``0.5 / 1000`` (half a bin) of the image side;
in pixels, within ``side / 2000`` (tests/test_mllm/test_coords.py checks it).
"""
import re
from typing import List, NamedTuple, Optional, Sequence

import numpy as np

#: Bins per axis of the text frame: coordinates are the integers 0..NUM_BINS - 1.
NUM_BINS = 1000
#: The largest round-trip error of a normalised coordinate (half a bin).
MAX_ROUND_TRIP_ERROR = 0.5 / NUM_BINS

# Four non-negative integers in brackets, separated by commas (any whitespace). The digit
# runs are unbounded so that an out-of-range value is reported, not silently cut.
_BOX_RE = re.compile(r'\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]')


def quantize(coords: Sequence[float]) -> List[int]:
    """Normalised coordinates in [0, 1] -> bins 0..999 (values outside [0, 1] are clipped)."""
    values = np.clip(np.asarray(coords, dtype=np.float64), 0.0, 1.0)
    return [int(q) for q in np.minimum(np.floor(values * NUM_BINS), NUM_BINS - 1)]


def dequantize(bins: Sequence[int]) -> List[float]:
    """Bins 0..999 -> normalised coordinates at the bin centres."""
    return [(int(q) + 0.5) / NUM_BINS for q in bins]


def normalize_box(box: Sequence[float], width: float, height: float) -> List[float]:
    """xyxy pixels of a ``width`` x ``height`` image -> normalised xyxy in [0, 1]."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1 / width, y1 / height, x2 / width, y2 / height]


def format_box(box: Sequence[float]) -> str:
    """A normalised xyxy box -> its text, e.g. ``'[120,45,560,999]'``."""
    return '[' + ','.join(str(q) for q in quantize(box)) + ']'


def text_box(box: Sequence[float]) -> List[float]:
    """What the text of ``box`` reads back as (normalised xyxy at bin centres): the box a
    reader of :func:`format_box` sees."""
    return dequantize(quantize(box))


class ParsedBox(NamedTuple):
    """One bracketed group of four integers found in a text.

    Attributes:
        box (list[float] | None): Normalised xyxy (bin centres), None when invalid.
        error (str | None): Why the group is not a box: ``'out of range'`` (a value above
            999) or ``'inverted'`` (``x2 < x1`` or ``y2 < y1``); None for a box.
        span (tuple): (start, end) character offsets of the group in the text.
    """
    box: Optional[List[float]]
    error: Optional[str]
    span: tuple


def find_boxes(text: str) -> List[ParsedBox]:
    """Every ``[a,b,c,d]`` group of a text, valid or not, in order of appearance."""
    found = []
    for match in _BOX_RE.finditer(text):
        bins = [int(g) for g in match.groups()]
        if max(bins) >= NUM_BINS:
            found.append(ParsedBox(None, 'out of range', match.span()))
        elif bins[2] < bins[0] or bins[3] < bins[1]:
            found.append(ParsedBox(None, 'inverted', match.span()))
        else:
            found.append(ParsedBox(dequantize(bins), None, match.span()))
    return found


def parse_boxes(text: str) -> List[List[float]]:
    """The valid boxes of a text (normalised xyxy, bin centres), in order of appearance."""
    return [p.box for p in find_boxes(text) if p.box is not None]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two xyxy boxes (any common frame); 0 for empty boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
    return float(inter / union) if union > 0 else 0.0
