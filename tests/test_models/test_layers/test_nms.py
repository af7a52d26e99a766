"""NMS wrappers: the same result for boxes of any memory layout. (On CPU, mmcv's own NMS
also passes this; the wrappers' contiguity guard is for kernels not checkable here.)"""
import torch

from cllip_mm.models.layers import batched_nms, nms


def _boxes(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 40
    boxes = torch.cat([xy, xy + 10 + torch.rand(n, 2, generator=g) * 20], 1)
    return boxes, torch.rand(n, generator=g), torch.randint(0, 3, (n, ), generator=g)


def test_nms_and_batched_nms_in_any_layout():
    boxes, scores, labels = _boxes()
    transposed = boxes.t().contiguous().t()  # same values, [4, N] storage
    assert not transposed.is_contiguous()
    _, keep = nms(boxes, scores, 0.3)
    _, keep_t = nms(transposed, scores, 0.3)
    assert torch.equal(keep, keep_t) and 0 < len(keep) < len(boxes)
    cfg = dict(type='nms', iou_threshold=0.3)
    _, keep = batched_nms(boxes, scores, labels, cfg)
    _, keep_t = batched_nms(transposed, scores, labels, cfg)
    assert torch.equal(keep, keep_t)
