# Copyright (c) cllip_mm contributors. All rights reserved.
"""CLOC on a padded batch: images smaller than the batch input (``img_shape`` smaller
than ``inputs.shape[-2:]``, padded bottom / right by the data preprocessor) give the
prompter and the grounding loss boxes in the frame of the padded input, where the
pixels of each box really are."""
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

from cllip_mm.registry import MODELS, TRANSFORMS
from cllip_mm.utils import register_all_modules

# (h, w), xyxy pixel boxes of the image, BGR colour painted in each box
IMAGES = [
    ((32, 32), [[2, 4, 30, 20]], [(0, 0, 255)]),
    ((16, 24), [[3, 2, 11, 14], [14, 8, 24, 16]], [(255, 0, 0), (0, 255, 0)]),
    ((24, 32), [], []),  # no regions: padding rows only
]
BACKGROUND = (40, 40, 40)


def packed_sample(hw, boxes, colours, index):
    img = np.full((*hw, 3), BACKGROUND, np.uint8)
    for (x1, y1, x2, y2), colour in zip(boxes, colours):
        img[y1:y2, x1:x2] = colour
    phrases = [f'box {index} {r}' for r in range(len(boxes))]
    pack = TRANSFORMS.build(dict(type='PackRegionTextInputs'))
    return pack(dict(img=img, img_shape=hw, ori_shape=hw,
                     gt_bboxes=np.array(boxes, np.float32).reshape(-1, 4),
                     gt_phrases=phrases, caption=f'image {index}'))


@pytest.fixture
def model_and_batch(make_tiny_cloc_cfg):
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(make_tiny_cloc_cfg().model)
    batch = pseudo_collate([packed_sample(*spec, i) for i, spec in enumerate(IMAGES)])
    return model, model.data_preprocessor(batch, True)


def record_calls(module, monkeypatch):
    calls = []
    forward = module.forward

    def recording(*args, **kwargs):
        calls.append(args)
        return forward(*args, **kwargs)

    monkeypatch.setattr(module, 'forward', recording)
    return calls


def test_boxes_are_in_the_padded_input_frame(model_and_batch, monkeypatch):
    model, data = model_and_batch
    inputs, samples = data['inputs'], data['data_samples']
    assert inputs.shape == (3, 3, 32, 32)  # padded to the largest image
    assert [tuple(s.img_shape) for s in samples] == [hw for hw, _, _ in IMAGES]
    prompter_calls = record_calls(model.prompter, monkeypatch)
    grounding_calls = record_calls(model.grounding_loss, monkeypatch)
    losses = model(**data, mode='loss')
    assert all(torch.isfinite(losses[k]) for k in ('loss_clip', 'loss_region', 'loss_ground'))

    (_, boxes, _), = prompter_calls  # [B, Rmax, 4] normalised xyxy
    assert boxes.shape == (3, 2, 4)
    mean = model.data_preprocessor.mean.flatten()
    std = model.data_preprocessor.std.flatten()
    valid = []
    for b, (_, gt_boxes, colours) in enumerate(IMAGES):
        for r in range(2):
            if r >= len(gt_boxes):
                assert boxes[b, r].abs().sum() == 0  # a padding row
                continue
            valid.append(boxes[b, r])
            # Normalised by the batch input (32 x 32), not by the image's own size.
            pixels = boxes[b, r] * torch.tensor([32., 32., 32., 32.])
            torch.testing.assert_close(pixels, torch.tensor(gt_boxes[r], dtype=torch.float32),
                                       atol=1e-4, rtol=0)
            x1, y1, x2, y2 = pixels.round().long().tolist()
            # ... and there, in the padded input, are the pixels painted in the box
            rgb = torch.tensor(colours[r][::-1], dtype=torch.float32)
            expected = ((rgb - mean) / std)[:, None, None].expand(3, y2 - y1, x2 - x1)
            torch.testing.assert_close(inputs[b, :, y1:y2, x1:x2], expected)
    # The grounding loss is asked for the same boxes (the R valid ones, in order).
    # ('token' head: each region's target once per box read for it, in region order)
    (_, targets, weights), = grounding_calls[:1]
    torch.testing.assert_close(torch.unique_consecutive(targets, dim=0), torch.stack(valid))
    assert weights.sum().item() == pytest.approx(len(valid))  # each region weighs 1

