# Copyright (c) cllip_mm contributors. All rights reserved.
"""ClipContrastiveLoss averages both directions, on data where they differ."""
import math

import pytest
import torch

from cllip_mm.models import ClipContrastiveLoss

# Image i pairs with text i. Image 1 is closer to text 0 than to its own text (a hard
# case for image->text), while every text is closest to its own image: the two
# directions of the InfoNCE differ (about 0.71 vs 0.04 at scale 10).
IMAGES = [[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]]
TEXTS = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
SCALE = 10.0


def one_direction(queries, keys, scale):
    """-1/N sum_i log softmax_j(scale <q_i, k_j>)[i], with plain Python loops."""
    n = len(queries)
    total = 0.0
    for i in range(n):
        sims = [scale * sum(a * b for a, b in zip(queries[i], keys[j])) for j in range(n)]
        total -= sims[i] - math.log(sum(math.exp(s) for s in sims))
    return total / n


def test_directions_differ_in_the_fixture():
    i2t = one_direction(IMAGES, TEXTS, SCALE)
    t2i = one_direction(TEXTS, IMAGES, SCALE)
    assert abs(i2t - t2i) > 0.5  # a loss computing one direction twice cannot pass


def test_loss_is_the_mean_of_both_directions():
    loss_fn = ClipContrastiveLoss(init_logit_scale=math.log(SCALE), loss_weight=2.0)
    loss = loss_fn(torch.tensor(IMAGES), torch.tensor(TEXTS))
    i2t = one_direction(IMAGES, TEXTS, SCALE)
    t2i = one_direction(TEXTS, IMAGES, SCALE)
    assert loss.item() == pytest.approx(2.0 * 0.5 * (i2t + t2i), rel=1e-5)


def test_gradients_of_both_directions():
    # d/d image_0 differs between i2t and t2i: check against autograd of the loop
    # reference in float64.
    images = torch.tensor(IMAGES, dtype=torch.float64, requires_grad=True)
    texts = torch.tensor(TEXTS, dtype=torch.float64, requires_grad=True)
    loss_fn = ClipContrastiveLoss(init_logit_scale=math.log(SCALE)).double()
    loss_fn(images, texts).backward()
    ref_images = torch.tensor(IMAGES, dtype=torch.float64, requires_grad=True)
    ref_texts = torch.tensor(TEXTS, dtype=torch.float64, requires_grad=True)
    logits = SCALE * ref_images @ ref_texts.t()
    log_i2t = logits.log_softmax(dim=1).diagonal()
    log_t2i = logits.log_softmax(dim=0).diagonal()
    (-0.5 * (log_i2t.mean() + log_t2i.mean())).backward()
    torch.testing.assert_close(images.grad, ref_images.grad)
    torch.testing.assert_close(texts.grad, ref_texts.grad)
