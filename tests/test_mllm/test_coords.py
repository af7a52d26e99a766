# Copyright (c) cllip_mm contributors. All rights reserved.
"""Boxes as text coordinates (0-999 frame): the round trip and the parser."""
import numpy as np
import pytest

from cllip_mm.mllm import MAX_ROUND_TRIP_ERROR, NUM_BINS, find_boxes, format_box, parse_boxes
from cllip_mm.mllm.coords import box_iou, dequantize, quantize, text_box


def test_round_trip_within_half_a_bin():
    rng = np.random.default_rng(0)
    corners = np.sort(rng.random((2000, 2, 2)), axis=1)  # x1 <= x2, y1 <= y2
    boxes = np.stack([corners[:, 0, 0], corners[:, 0, 1], corners[:, 1, 0], corners[:, 1, 1]], 1)
    boxes[:4] = [[0, 0, 1, 1], [0.0005, 0.0004999, 0.9995, 0.9994999], [0.5, 0.5, 0.5, 0.5],
                 [0.001, 0.999, 0.999, 1.0]]
    worst = 0.0
    for box in boxes:
        text = format_box(box)
        assert text.startswith('[') and text.endswith(']') and ' ' not in text
        (back, ) = parse_boxes(text)
        worst = max(worst, float(np.abs(np.asarray(back) - box).max()))
        assert back == text_box(box)
    assert MAX_ROUND_TRIP_ERROR == 0.5 / NUM_BINS == 0.0005
    assert worst <= MAX_ROUND_TRIP_ERROR + 1e-12
    # the bound is tight: reading bins at their lower edge (q / 1000) would break it
    assert worst > 0.9 * MAX_ROUND_TRIP_ERROR


def test_frame_edges_and_clipping():
    assert quantize([0.0, 0.0009999, 0.001, 1.0]) == [0, 0, 1, 999]
    assert quantize([-0.3, 1.7]) == [0, 999]  # outside [0, 1]: clipped
    assert dequantize([0, 999]) == [0.0005, 0.9995]
    assert format_box([0.25, 0.5, 0.75, 1.0]) == '[250,500,750,999]'


def test_parser_reads_any_spacing_and_reports_bad_groups():
    text = 'a [ 10 , 20,30 ,40 ] b [1000,0,5,5] c [9,9,1,1] d [1,2,3] e [0,0,999,999]'
    found = find_boxes(text)
    assert [f.error for f in found] == [None, 'out of range', 'inverted', None]
    assert found[0].box == pytest.approx([0.0105, 0.0205, 0.0305, 0.0405])
    assert parse_boxes(text) == [found[0].box, found[3].box]
    assert parse_boxes('no box here') == [] and parse_boxes('[1,2,3,4') == []


def test_box_iou():
    assert box_iou([0, 0, 1, 1], [0, 0, 1, 1]) == 1.0
    assert box_iou([0, 0, 1, 1], [1, 1, 2, 2]) == 0.0
    assert box_iou([0, 0, 2, 2], [1, 0, 3, 2]) == pytest.approx(1 / 3)
    assert box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0
