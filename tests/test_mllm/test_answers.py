# Copyright (c) cllip_mm contributors. All rights reserved.
"""Reading generations: exact phrases, first boxes, malformed answers counted."""
import pytest

from cllip_mm.mllm import Instruction, parse_answer, score_generations


def inst(task, target, answer=''):
    return Instruction(0, task, ('q', ), (), answer, target, 0)


def test_malformed_generations_are_counted_never_raised():
    gt_box = (0.1, 0.1, 0.5, 0.5)
    instructions = (
        [inst('referring', 'red circle')] * 5 +
        [inst('grounding', gt_box)] * 8 +
        [inst('relation', 'left')] * 4)
    generations = [
        # referring: right (case, spaces, trailing dot), wrong, empty, None
        'Red  circle.', 'red circle', 'blue square', '   ', None,
        # grounding: IoU 1 (first box counts), IoU < 0.5, no box, out of range,
        # inverted first box (the valid second one is not read), truncated, bytes, ''
        '[100,100,500,500] and [0,0,1,1]', '[400,400,900,900]', 'the red circle',
        '[100,100,1000,500]', '[500,100,100,500] [100,100,500,500]', '[100,100,500', b'[1,2,3,4]',
        '',
        # relation: right, wrong, not a relation, None
        'left', 'right', 'up there', None]
    scores = score_generations(instructions, generations)
    assert scores.correct == ([True, True, False, False, False] +
                              [True, False, False, False, False, False, False, False] +
                              [True, False, False, False])
    assert scores.malformed == {
        'referring': {'empty': 1, 'not text': 1},
        'grounding': {'no box': 3, 'out of range': 1, 'inverted': 1, 'not text': 1},
        'relation': {'not a relation': 1, 'not text': 1}}
    m = scores.metrics
    assert m['referring/acc'] == pytest.approx(2 / 5)
    assert m['grounding/acc@0.5'] == pytest.approx(1 / 8)
    assert m['relation/acc'] == pytest.approx(1 / 4)
    assert m['grounding/malformed'] == pytest.approx(6 / 8)
    assert (m['referring/num'], m['grounding/num'], m['relation/num']) == (5, 8, 4)


def test_iou_threshold_and_phrase_normalisation():
    gt_box = (0.0, 0.0, 0.5, 0.5)
    # [0,0,500,700] vs the GT: IoU = 0.25 / 0.35 = 0.714...
    half = score_generations([inst('grounding', gt_box)], ['[0,0,499,699]'], iou_thr=0.5)
    strict = score_generations([inst('grounding', gt_box)], ['[0,0,499,699]'], iou_thr=0.75)
    assert half.correct == [True] and strict.correct == [False]
    assert 'grounding/acc@0.75' in strict.metrics
    assert parse_answer('referring', ' Ｒed circle! ').value == 'red circle'  # NFKC, case
    assert parse_answer('referring', 'red circles').value != 'red circle'  # exact match


def test_lengths_must_match():
    with pytest.raises(ValueError, match='generations'):
        score_generations([inst('referring', 'a')], [])
