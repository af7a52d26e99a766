"""The one helper for box padding / normalisation (CLOC, the grounding path, the mmdet
region classifier and RoI rows use it)."""
import torch

from cllip_mm.structures import denormalize_boxes, normalize_boxes, pad_boxes, padding_mask


def test_normalize_is_by_the_input_size_w_then_h_and_clipped():
    boxes = torch.tensor([[10., 20., 30., 40.], [-5., 0., 90., 50.]])
    out = normalize_boxes(boxes, (40, 80))  # h=40, w=80
    assert torch.equal(out, torch.tensor([[0.125, 0.5, 0.375, 1.0], [0., 0., 1., 1.]]))
    assert torch.allclose(denormalize_boxes(out[:1], (40, 80)), boxes[:1])


def test_padding_mask():
    assert padding_mask([2, 0, 3]).tolist() == [[True, True, False], [False, False, False],
                                                [True, True, True]]
    assert padding_mask([]).shape == (0, 0)
    assert padding_mask([0, 0]).shape == (2, 0)


def test_pad_boxes_keeps_image_order_and_normalises_by_the_batch_input():
    # Image 1 is smaller than the batch input (bottom / right padding): its pixel boxes
    # are divided by the batch size (h=32, w=64), not by its own img_shape.
    first = torch.tensor([[0., 0., 64., 32.], [16., 8., 32., 16.]])
    second = torch.tensor([[8., 8., 16., 24.]], dtype=torch.float64)
    padded, valid = pad_boxes([first, torch.zeros(0, 4), second], (32, 64))
    assert padded.shape == (3, 2, 4) and padded.dtype == torch.float32
    assert valid.tolist() == [[True, True], [False, False], [True, False]]
    assert torch.equal(padded[valid], torch.tensor([[0., 0., 1., 1.], [0.25, 0.25, 0.5, 0.5],
                                                    [0.125, 0.25, 0.25, 0.75]]))
    assert torch.equal(padded[~valid], torch.zeros(3, 4))


def test_pad_boxes_without_boxes():
    padded, valid = pad_boxes([torch.zeros(0, 4)] * 2, (8, 8))
    assert padded.shape == (2, 0, 4) and valid.shape == (2, 0)
    padded, valid = pad_boxes([], (8, 8))
    assert padded.shape == (0, 0, 4) and valid.shape == (0, 0)
