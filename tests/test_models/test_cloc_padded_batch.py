# Copyright (c) cllip_mm contributors. All rights reserved.
"""CLOC on a padded batch: images smaller than the batch input (``img_shape`` smaller
than ``inputs.shape[-2:]``, padded bottom / right by the data preprocessor) give the
prompter and the grounding loss boxes in the frame of the padded input, where the
pixels of each box really are: the losses equal those of images padded by hand, the
region embeddings those of the boxes at pixels / input size."""
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


def test_boxes_are_in_the_padded_input_frame(model_and_batch):
    model, data = model_and_batch
    inputs, samples = data['inputs'], data['data_samples']
    assert inputs.shape == (3, 3, 32, 32)  # padded to the largest image
    assert [tuple(s.img_shape) for s in samples] == [hw for hw, _, _ in IMAGES]
    mean = model.data_preprocessor.mean.flatten()
    std = model.data_preprocessor.std.flatten()
    for b, (_, gt_boxes, colours) in enumerate(IMAGES):
        for (x1, y1, x2, y2), colour in zip(gt_boxes, colours):
            # in the padded input, the box's pixels are where they were in the image
            rgb = torch.tensor(colour[::-1], dtype=torch.float32)
            expected = ((rgb - mean) / std)[:, None, None].expand(3, y2 - y1, x2 - x1)
            torch.testing.assert_close(inputs[b, :, y1:y2, x1:x2], expected)

    # Training: the same losses as for 32 x 32 images holding the padding as their own
    # pixels (boxes normalised by the input, not by each image's own size).
    def losses(batch_samples):
        torch.manual_seed(1)
        out = model(inputs, batch_samples, mode='loss')
        return {k: out[k].detach() for k in ('loss_clip', 'loss_region', 'loss_ground')}

    padded = losses(samples)
    assert all(torch.isfinite(v) for v in padded.values())
    whole = [s.clone() for s in samples]
    for s in whole:
        s.set_metainfo(dict(img_shape=(32, 32)))
    for key, value in losses(whole).items():
        torch.testing.assert_close(value, padded[key], msg=key)

    # Inference: each region's embedding is the one of its box in the input's frame,
    # i.e. pixels / 32 (CLOC.embed_regions, image by image).
    model.eval()
    with torch.no_grad():
        predicted = model(inputs, [s.clone() for s in samples], mode='predict')
        for b, (_, gt_boxes, _) in enumerate(IMAGES):
            if not gt_boxes:
                continue
            boxes = torch.tensor(gt_boxes, dtype=torch.float32)[None] / 32
            torch.testing.assert_close(predicted[b].pred_regions.embeds,
                                       model.embed_regions(inputs[b:b + 1], boxes)[0],
                                       atol=1e-5, rtol=1e-5)
