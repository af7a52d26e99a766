"""2 gloo processes give the CLOC losses and gradients of 1 process on the whole batch."""
import os

import pytest
import torch
from dist_utils import run_in_processes
from mmengine.dataset import pseudo_collate
from torch.nn.parallel import DistributedDataParallel

from cllip_mm.registry import DATASETS, MODELS
from cllip_mm.utils import register_all_modules

BATCH = 8


def losses_and_grads(cfg, indices, ddp, no_regions=()):
    """``no_regions``: images whose regions are dropped (images without region text)."""
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    dataset = DATASETS.build(cfg.val_dataloader.dataset)  # deterministic pipeline
    items = [dataset[i] for i in indices]
    for item, i in zip(items, indices):
        if i in no_regions:
            item['data_samples'].gt_regions = item['data_samples'].gt_regions[:0]
    data = model.data_preprocessor(pseudo_collate(items), True)
    net = DistributedDataParallel(model) if ddp else model
    losses = net(**data, mode='loss')
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    return ({k: v.item() for k, v in losses.items() if k.startswith('loss')},
            {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})


def worker(rank, world_size, cfg, out_dir, no_regions=()):
    # Uneven split on purpose: ranks hold different numbers of images and regions.
    indices = range(0, 3) if rank == 0 else range(3, BATCH)
    result = losses_and_grads(cfg, indices, ddp=True, no_regions=no_regions)
    torch.save(result, os.path.join(out_dir, f'rank{rank}.pth'))


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
@pytest.mark.parametrize('grounding', ['mlp', 'token', 'paper'])
def test_two_processes_match_one(make_tiny_cloc_cfg, tmp_path, grounding):
    cfg = make_tiny_cloc_cfg()
    # 'token' (the demo's): per-box weights, the token cross-entropy, the refined boxes
    extra = {'loss_ground_token', 'loss_ground_refine'}
    no_regions = ()
    if grounding == 'mlp':
        cfg.model.grounding_head.update(box_mode='mlp', refine=False, rescore_topk=1)
        extra = set()
    if grounding == 'paper':
        # the paper's heads, text filtering and lambda; 2 of the 8 images without regions
        # (1 on rank 0, 1 on rank 1): lambda must be 6 / 8 on both ranks, not 2 / 3 and 4 / 5
        parts = dict(prompter=dict(type='ClocPrompter', width=32, embed_dim=16),
                     grounding_head=dict(type='ClocGroundingHead', embed_dim=16),
                     grounding_loss=None,
                     region_loss=dict(type='RegionTextContrastiveLoss', share_logit_scale=True,
                                      text_filter_threshold=0.9),
                     region_loss_weighting='image_fraction')
        for key, value in parts.items():
            cfg.model[key] = value
        extra, no_regions = set(), (1, 5)
    run_in_processes(worker, args=(cfg, str(tmp_path), no_regions), tmp_dir=tmp_path,
                     collective_timeout=120)
    ref_losses, ref_grads = losses_and_grads(cfg, range(BATCH), ddp=False, no_regions=no_regions)
    assert set(ref_losses) == {'loss_clip', 'loss_region', 'loss_ground'} | extra
    for rank in (0, 1):
        losses, grads = torch.load(str(tmp_path / f'rank{rank}.pth'))
        for key, value in ref_losses.items():
            assert abs(losses[key] - value) < 1e-5, (rank, key, losses[key], value)
        assert set(grads) == set(ref_grads)
        for name, grad in ref_grads.items():
            torch.testing.assert_close(grads[name], grad, atol=2e-5, rtol=1e-4, msg=name)
