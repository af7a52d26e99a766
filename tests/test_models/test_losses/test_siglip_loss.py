# Copyright (c) cllip_mm contributors. All rights reserved.
import math

import numpy as np
import pytest
import torch

from cllip_mm.models.losses import SigLipLoss
from cllip_mm.registry import MODELS

IMAGES = [[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]
TEXTS = [[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]]


def reference(images, texts, t, b):
    """-1/B sum_ij log sigmoid(z_ij (t x_i.y_j + b)) with plain loops."""
    n = len(images)
    total = 0.0
    for i in range(n):
        for j in range(n):
            z = 1.0 if i == j else -1.0
            logit = t * float(np.dot(images[i], texts[j])) + b
            total += math.log(1.0 / (1.0 + math.exp(-z * logit)))
    return -total / n


def test_defaults_and_value():
    loss_fn = MODELS.build(dict(type='SigLipLoss'))
    assert isinstance(loss_fn, SigLipLoss)
    assert loss_fn.get_scale().item() == pytest.approx(10.0)
    assert loss_fn.logit_bias.item() == pytest.approx(-10.0)
    loss = loss_fn(torch.tensor(IMAGES), torch.tensor(TEXTS))
    assert loss.item() == pytest.approx(reference(IMAGES, TEXTS, 10.0, -10.0), rel=1e-5)


def test_other_scale_bias_and_grads():
    loss_fn = SigLipLoss(init_logit_scale=math.log(2.0), init_logit_bias=0.5, loss_weight=2.0)
    loss = loss_fn(torch.tensor(IMAGES), torch.tensor(TEXTS))
    assert loss.item() == pytest.approx(2 * reference(IMAGES, TEXTS, 2.0, 0.5), rel=1e-5)
    loss.backward()
    assert loss_fn.logit_scale.grad.abs() > 0 and loss_fn.logit_bias.grad.abs() > 0


def test_optional_clamp():
    loss_fn = SigLipLoss(init_logit_scale=math.log(50.0), max_logit_scale=math.log(20.0))
    loss = loss_fn(torch.tensor(IMAGES), torch.tensor(TEXTS))
    assert loss.item() == pytest.approx(reference(IMAGES, TEXTS, 20.0, -10.0), rel=1e-5)


def test_bad_shapes():
    with pytest.raises(ValueError, match='SigLipLoss'):
        SigLipLoss()(torch.zeros(3, 2), torch.zeros(3, 4))
