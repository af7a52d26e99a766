# Copyright (c) cllip_mm contributors. All rights reserved.
"""benchmarks/region_mllm_box_control.py: the moved question boxes another region, one with a
different phrase, of the same image, and asks the same question."""
import importlib.util
import os.path as osp

import numpy as np

from cllip_mm.mllm import InstructionBuilder
from cllip_mm.mllm.coords import text_box
from cllip_mm.mllm.records import RegionRecord

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_benchmark():
    spec = importlib.util.spec_from_file_location(
        'region_mllm_box_control', osp.join(ROOT, 'benchmarks', 'region_mllm_box_control.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_moved_question_boxes_a_region_with_another_phrase():
    records = [
        RegionRecord('a.jpg', 100, 50, np.array([[0, 0, 10, 10], [50, 20, 90, 40],
                                                  [20, 5, 30, 45]], np.float32),
                     ['red circle', 'red circle', 'blue star']),
        RegionRecord('b.jpg', 80, 80, np.array([[1, 1, 9, 9], [40, 40, 70, 70]], np.float32),
                     ['green square', 'green square']),  # no other phrase: left out
    ]
    questions = InstructionBuilder(dict(referring=2, grounding=1), seed=3).build(records)
    pairs = load_benchmark().moved_questions(records, questions, seed=0)
    referring_a = [q for q in questions if q.task == 'referring' and q.image_index == 0]
    assert [p[0] for p in pairs] == referring_a  # image b has a single phrase
    for asked, moved in pairs:
        record = records[asked.image_index]
        assert moved.parts == asked.parts and moved.image_index == asked.image_index
        assert record.phrases[moved.region_index] != record.phrases[asked.region_index]
        assert moved.target == moved.answer == record.phrases[moved.region_index]
        assert moved.boxes == (tuple(text_box(record.normalized_boxes()[moved.region_index])), )
