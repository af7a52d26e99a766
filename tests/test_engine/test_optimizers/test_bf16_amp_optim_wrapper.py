# Copyright (c) cllip_mm contributors. All rights reserved.
import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

from cllip_mm.engine.optimizers import BF16AmpOptimWrapper
from cllip_mm.registry import OPTIM_WRAPPERS


def test_forward_in_bf16_params_and_grads_in_fp32():
    torch.manual_seed(0)
    model = nn.Linear(8, 4)
    wrapper = OPTIM_WRAPPERS.build(
        dict(type='BF16AmpOptimWrapper'),
        default_args=dict(optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    assert isinstance(wrapper, BF16AmpOptimWrapper)
    before = model.weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 8))
        assert out.dtype == torch.bfloat16
    loss = out.float().pow(2).mean()
    wrapper.update_params(loss)
    assert model.weight.dtype == torch.float32
    assert model.weight.grad is None  # zeroed by update_params
    assert not torch.equal(model.weight, before)
    # outside the context nothing is cast
    assert model(torch.randn(2, 8)).dtype == torch.float32


def test_state_dict_is_the_plain_optim_wrapper_one():
    model = nn.Linear(2, 2)
    wrapper = BF16AmpOptimWrapper(optimizer=torch.optim.AdamW(model.parameters()))
    plain = OptimWrapper(optimizer=torch.optim.AdamW(model.parameters()))
    assert wrapper.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(wrapper.state_dict())
