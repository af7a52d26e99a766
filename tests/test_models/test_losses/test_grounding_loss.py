# Copyright (c) cllip_mm contributors. All rights reserved.
import pytest
import torch

from cllip_mm.models.losses import GroundingLoss
from cllip_mm.registry import MODELS

PRED_CXCYWH = [[0.5, 0.5, 0.4, 0.4], [0.25, 0.25, 0.1, 0.2]]
TARGET_XYXY = [[0.3, 0.3, 0.7, 0.7], [0.5, 0.5, 0.9, 0.7]]


def reference(preds, targets, w_l1, w_giou):
    """DETR's L1 (cxcywh, summed over coords, mean over boxes) + GIoU, with plain loops."""
    l1 = giou_loss = 0.0
    for (cx, cy, w, h), (x1, y1, x2, y2) in zip(preds, targets):
        target_c = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
        l1 += sum(abs(a - b) for a, b in zip([cx, cy, w, h], target_c))
        p = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        iw = max(0.0, min(p[2], x2) - max(p[0], x1))
        ih = max(0.0, min(p[3], y2) - max(p[1], y1))
        inter = iw * ih
        union = w * h + (x2 - x1) * (y2 - y1) - inter
        hull = (max(p[2], x2) - min(p[0], x1)) * (max(p[3], y2) - min(p[1], y1))
        giou = inter / union - (hull - union) / hull
        giou_loss += 1 - giou
    n = len(preds)
    return w_l1 * l1 / n + w_giou * giou_loss / n


def test_value_against_loops():
    loss_fn = MODELS.build(dict(type='GroundingLoss'))
    assert isinstance(loss_fn, GroundingLoss)
    pred = torch.tensor(PRED_CXCYWH, requires_grad=True)
    loss = loss_fn(pred, torch.tensor(TARGET_XYXY))
    assert loss.item() == pytest.approx(reference(PRED_CXCYWH, TARGET_XYXY, 5, 2), rel=1e-5)
    loss.backward()
    assert pred.grad.abs().sum() > 0


def test_weights_and_perfect_prediction():
    loss_fn = GroundingLoss(loss_l1=1.0, loss_giou=3.0, loss_weight=0.5)
    loss = loss_fn(torch.tensor(PRED_CXCYWH), torch.tensor(TARGET_XYXY))
    assert loss.item() == pytest.approx(
        0.5 * reference(PRED_CXCYWH, TARGET_XYXY, 1, 3), rel=1e-5)
    # The first target is exactly the first prediction: zero loss.
    zero = loss_fn(torch.tensor(PRED_CXCYWH[:1]), torch.tensor(TARGET_XYXY[:1]))
    assert zero.item() == pytest.approx(0.0, abs=1e-6)


def test_box_weights_average_each_regions_boxes():
    """Weighted boxes: a region read twice at weights 0.5 / 0.5 counts as one region."""
    loss_fn = GroundingLoss()
    pred, target = torch.tensor(PRED_CXCYWH), torch.tensor(TARGET_XYXY)
    other = torch.tensor([[0.6, 0.4, 0.3, 0.5]])
    # region 0 read at two tokens (pred 0 and `other`), region 1 once
    weighted = loss_fn(torch.cat([pred[:1], other, pred[1:]]), target[[0, 0, 1]],
                       torch.tensor([0.5, 0.5, 1.0]))
    expected = (0.5 * reference(PRED_CXCYWH[:1], TARGET_XYXY[:1], 5, 2) +
                0.5 * reference(other.tolist(), TARGET_XYXY[:1], 5, 2) +
                reference(PRED_CXCYWH[1:], TARGET_XYXY[1:], 5, 2)) / 2
    assert weighted.item() == pytest.approx(expected, rel=1e-5)
    assert loss_fn(pred, target, torch.ones(2)).item() == pytest.approx(
        loss_fn(pred, target).item(), rel=1e-6)
    with pytest.raises(ValueError, match=r'weight \[R\]'):
        loss_fn(pred, target, torch.ones(3))


def test_token_loss_is_the_mean_cross_entropy():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]], requires_grad=True)
    targets = torch.tensor([0, 1])
    loss = GroundingLoss(loss_token=0.5, loss_weight=2.0).token_loss(logits, targets)
    log_p = logits.detach().log_softmax(-1)
    assert loss.item() == pytest.approx(-(log_p[0, 0] + log_p[1, 1]).item() / 2, rel=1e-6)
    loss.backward()
    assert logits.grad[1, 1] < 0 < logits.grad[1, 2]
    empty = torch.zeros(0, 3, requires_grad=True)
    assert GroundingLoss().token_loss(empty, torch.zeros(0, dtype=torch.long)).item() == 0.0


def test_no_regions_gives_connected_zero():
    pred = torch.zeros(0, 4, requires_grad=True)
    loss = GroundingLoss()(pred, torch.zeros(0, 4))
    assert loss.item() == 0.0
    loss.backward()
    assert pred.grad is not None and pred.grad.shape == (0, 4)


def test_bad_shapes():
    with pytest.raises(ValueError, match=r'GroundingLoss.*\[R, 4\]'):
        GroundingLoss()(torch.zeros(2, 4), torch.zeros(3, 4))
