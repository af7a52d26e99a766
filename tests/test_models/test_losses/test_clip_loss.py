# Copyright (c) cllip_mm contributors. All rights reserved.
import math

import numpy as np
import pytest
import torch

from cllip_mm.models.losses import ClipContrastiveLoss
from cllip_mm.registry import MODELS

# 3 pairs of 2-D embeddings (the loss does not need them normalised).
IMAGES = [[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]
TEXTS = [[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]]


def reference(images, texts, scale):
    """Symmetric InfoNCE with plain loops."""
    n = len(images)
    sim = [[scale * float(np.dot(images[i], texts[j])) for j in range(n)] for i in range(n)]
    i2t = t2i = 0.0
    for i in range(n):
        i2t -= math.log(math.exp(sim[i][i]) / sum(math.exp(sim[i][j]) for j in range(n)))
        t2i -= math.log(math.exp(sim[i][i]) / sum(math.exp(sim[j][i]) for j in range(n)))
    return 0.5 * (i2t + t2i) / n


def test_value_against_loops():
    loss_fn = MODELS.build(dict(type='ClipContrastiveLoss'))
    assert isinstance(loss_fn, ClipContrastiveLoss)
    assert loss_fn.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    loss = loss_fn(torch.tensor(IMAGES), torch.tensor(TEXTS))
    assert loss.item() == pytest.approx(reference(IMAGES, TEXTS, 1 / 0.07), rel=1e-5)
    # Asymmetric example: the two directions differ, so swapping the inputs must not
    # change the symmetric loss while a one-directional loss would.
    swapped = loss_fn(torch.tensor(TEXTS), torch.tensor(IMAGES))
    assert swapped.item() == pytest.approx(loss.item(), rel=1e-6)


def test_loss_weight_and_scale():
    loss_fn = ClipContrastiveLoss(init_logit_scale=math.log(3.0), loss_weight=0.5)
    assert loss_fn.get_scale().item() == pytest.approx(3.0)
    loss = loss_fn(torch.tensor(IMAGES), torch.tensor(TEXTS))
    assert loss.item() == pytest.approx(0.5 * reference(IMAGES, TEXTS, 3.0), rel=1e-5)
    loss.backward()
    assert loss_fn.logit_scale.grad is not None and loss_fn.logit_scale.grad.abs() > 0


def test_clamp_at_100():
    loss_fn = ClipContrastiveLoss(init_logit_scale=math.log(1000.0))
    assert loss_fn.get_scale().item() == pytest.approx(100.0)
    loss = loss_fn(torch.tensor(IMAGES), torch.tensor(TEXTS))
    assert loss.item() == pytest.approx(reference(IMAGES, TEXTS, 100.0), rel=1e-5)
    loss.backward()
    assert loss_fn.logit_scale.grad.item() == 0.0  # clamped: no gradient above the max


def test_gradients_flow_to_embeddings():
    images = torch.tensor(IMAGES, requires_grad=True)
    texts = torch.tensor(TEXTS, requires_grad=True)
    ClipContrastiveLoss()(images, texts).backward()
    assert images.grad.abs().sum() > 0 and texts.grad.abs().sum() > 0


def test_bad_shapes():
    with pytest.raises(ValueError, match='ClipContrastiveLoss.*same shape'):
        ClipContrastiveLoss()(torch.zeros(3, 2), torch.zeros(2, 2))
