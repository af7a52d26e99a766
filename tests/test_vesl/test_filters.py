"""Region filters on hand-made boxes."""
import pytest
import torch
from mmengine.structures import InstanceData

from cllip_mm.registry import VESL_STAGES
from cllip_mm.vesl.detectors import empty_regions


def regions(boxes, scores, labels):
    return InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32),
                        scores=torch.tensor(scores), labels=torch.tensor(labels))


BOXES = [[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10.5], [20, 20, 22, 40], [30, 30, 60, 60]]
SCORES = [0.9, 0.8, 0.7, 0.6, 0.05]
LABELS = [0, 0, 1, 2, 1]


def apply(cfg, r=None, size=(100, 100)):
    return VESL_STAGES.build(cfg)(r if r is not None else regions(BOXES, SCORES, LABELS), size)


def test_score_threshold():
    out = apply(dict(type='ScoreThreshold', score_thr=0.1))
    assert out.scores.tolist() == pytest.approx(SCORES[:4])


def test_min_box_size():
    out = apply(dict(type='MinBoxSize', min_size=4))
    assert len(out) == 4 and 0.6 not in [round(s, 2) for s in out.scores.tolist()]
    out = apply(dict(type='MinBoxSize', min_size=1, min_rel_area=0.05))  # >= 500 px^2
    assert out.scores.tolist() == pytest.approx([0.05])


def test_per_phrase_nms_keeps_other_phrases():
    out = apply(dict(type='PerPhraseNMS', iou_thr=0.5))
    # box 1 (phrase 0) overlaps box 0 (same phrase): gone; box 2 has phrase 1: kept
    assert sorted(out.scores.tolist()) == pytest.approx(sorted([0.9, 0.7, 0.6, 0.05]))


def test_cross_phrase_nms():
    out = apply(dict(type='CrossPhraseNMS', iou_thr=0.5))
    assert sorted(out.scores.tolist()) == pytest.approx(sorted([0.9, 0.6, 0.05]))
    assert len(apply(dict(type='CrossPhraseNMS'), empty_regions())) == 0
    assert len(apply(dict(type='PerPhraseNMS'), empty_regions())) == 0


def test_max_regions_per_image_and_phrase():
    out = apply(dict(type='MaxRegions', max_per_image=3, max_per_phrase=1))
    assert out.scores.tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert out.labels.tolist() == [0, 1, 2]
