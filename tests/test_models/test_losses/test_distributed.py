# Copyright (c) cllip_mm contributors. All rights reserved.
"""Two gloo processes on CPU must reproduce a one-process run on the whole batch.

Each rank gets part of a fixed batch (different numbers of images, regions and phrases per
rank, "dog" on both ranks, one split with a rank holding no region at all). Embeddings come
from a small nn.Linear shared through DistributedDataParallel; the loss values and the
DDP-averaged gradients of the Linear and of the loss parameters must match the one-process
run (computed in the parent process, which has no process group). The contrastive losses run
in both forms: open_clip's local form (``local_loss=True``, each rank computes its rows of
the logits and its share of the loss) and the global form (every rank the whole loss).
"""
import gc

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from dist_utils import run_in_processes
from torch.nn.parallel import DistributedDataParallel

from cllip_mm.models.losses import GroundingLoss, phrase_keys
from cllip_mm.models.losses.utils import gather_variable_with_grad
from cllip_mm.registry import MODELS

WORLD_SIZE = 2
IN_DIM, EMBED_DIM = 6, 5
# (image, phrase) of the global batch's regions; image 3 has none. "bird" has no region.
REGIONS = [(0, 'cat'), (0, 'dog'), (1, 'dog'), (2, 'dog'), (2, 'tree')]
# Images of each rank, and the rank holding the extra phrase "bird".
SPLITS = {
    'uneven': ([[0, 1], [2, 3]], 1),  # R = 3 / 2, "dog" on both ranks
    'empty_rank': ([[0, 1, 2], [3]], 0),  # R = 5 / 0, U = 4 / 0, B = 3 / 1
}
CONTRASTIVE = [
    dict(type='ClipContrastiveLoss'),
    dict(type='SigLipLoss', init_logit_scale=1.0, init_logit_bias=-1.0),
    dict(type='RegionTextContrastiveLoss', init_logit_scale=1.5),
    dict(type='RegionTextContrastiveLoss', init_logit_scale=1.5, negatives='image'),
    # the paper's negative filtering (a low threshold, so that these random texts trigger it)
    dict(type='RegionTextContrastiveLoss', init_logit_scale=1.5, text_filter_threshold=0.0),
]
LOSSES = [
    *(dict(cfg, local_loss=local) for cfg in CONTRASTIVE for local in (True, False)),
    dict(type='RegionTextContrastiveLoss', init_logit_scale=1.5, negatives='local'),
    dict(type='GroundingLoss'),
    # per-box weights and the 'token' head's cross-entropy over 3 tokens
    dict(type='GroundingLoss', loss_token=0.7),
]
NUM_TOKENS = 3


def make_data():
    gen = torch.Generator().manual_seed(0)
    phrases = ['cat', 'dog', 'tree', 'bird']
    return dict(
        image_feats=torch.randn(4, IN_DIM, generator=gen),
        text_feats=torch.randn(4, IN_DIM, generator=gen),
        region_feats=torch.randn(len(REGIONS), IN_DIM, generator=gen),
        phrase_feats=dict(zip(phrases, torch.randn(len(phrases), IN_DIM, generator=gen))),
        boxes=torch.tensor([[0.1, 0.1, 0.5, 0.6], [0.2, 0.3, 0.9, 0.8], [0.0, 0.0, 1.0, 1.0],
                            [0.4, 0.1, 0.6, 0.3], [0.3, 0.5, 0.7, 0.9]]))


def make_batch(data, images, extra_phrases):
    """The inputs of one process holding ``images`` (global indices)."""
    region_ids = [k for k, (img, _) in enumerate(REGIONS) if img in images]
    phrases = []
    for text in [REGIONS[k][1] for k in region_ids] + extra_phrases:
        if text not in phrases:
            phrases.append(text)
    return dict(
        image_feats=data['image_feats'][images],
        text_feats=data['text_feats'][images],
        region_feats=data['region_feats'][region_ids],
        phrase_feats=torch.stack([data['phrase_feats'][t] for t in phrases])
        if phrases else torch.zeros(0, IN_DIM),
        region_phrase_index=torch.tensor([phrases.index(REGIONS[k][1]) for k in region_ids],
                                         dtype=torch.long),
        phrase_keys=phrase_keys(phrases),
        region_image_index=torch.tensor([images.index(REGIONS[k][0]) for k in region_ids],
                                        dtype=torch.long),
        boxes=data['boxes'][region_ids])


class Toy(nn.Module):
    """A shared Linear that makes every embedding (or the boxes), and one loss."""

    def __init__(self, loss_cfg):
        super().__init__()
        torch.manual_seed(0)
        self.loss = MODELS.build(loss_cfg)
        self.is_grounding = isinstance(self.loss, GroundingLoss)
        self.with_tokens = 'loss_token' in loss_cfg
        out_dim = 4 + NUM_TOKENS * self.with_tokens if self.is_grounding else EMBED_DIM
        self.linear = nn.Linear(IN_DIM, out_dim)

    def forward(self, batch):
        if self.is_grounding:
            out = self.linear(batch['region_feats'])
            if not self.with_tokens:
                return self.loss(out.sigmoid(), batch['boxes'])
            boxes = batch['boxes']
            weights = boxes[:, 0] + 0.5  # uneven, so the global weight sum matters
            token_targets = (boxes[:, 1] * 10).long() % NUM_TOKENS
            return (self.loss(out[:, :4].sigmoid(), boxes, weights) +
                    self.loss.token_loss(out[:, 4:], token_targets))
        embed = lambda x: F.normalize(self.linear(x), dim=-1)  # noqa: E731
        if 'Region' not in type(self.loss).__name__:
            return self.loss(embed(batch['image_feats']), embed(batch['text_feats']))
        return self.loss(
            embed(batch['region_feats']), embed(batch['phrase_feats']),
            batch['region_phrase_index'], batch['phrase_keys'], batch['region_image_index'])


def run_once(model, batch):
    model.zero_grad()
    loss = model(batch)
    loss.backward()
    module = getattr(model, 'module', model)
    return loss.detach(), {n: p.grad.clone() for n, p in module.named_parameters()}


def one_process_references():
    """{(rank, split, loss index): (loss, grads)} of one process on the whole batch."""
    data = make_data()
    references = {}
    for split, (rank_images, extra_rank) in SPLITS.items():
        whole = make_batch(data, [0, 1, 2, 3], ['bird'])
        halves = [make_batch(data, imgs, ['bird'] if r == extra_rank else [])
                  for r, imgs in enumerate(rank_images)]
        for i, cfg in enumerate(LOSSES):
            if cfg.get('negatives') == 'local':
                # Per-rank losses; DDP averages the gradients of the two ranks.
                runs = [run_once(Toy(cfg), half) for half in halves]
                grads = {n: sum(g[n] for _, g in runs) / WORLD_SIZE for n in runs[0][1]}
                for rank in range(WORLD_SIZE):
                    references[rank, split, i] = (runs[rank][0], grads)
            else:
                for rank in range(WORLD_SIZE):
                    references[rank, split, i] = run_once(Toy(cfg), whole)
    return references


def _worker(rank, world_size, references):
    data = make_data()
    # The helpers themselves: variable sizes, with and without grad.
    local = (torch.arange(3. * (2 - rank)) + 10 * rank).reshape(-1, 3).requires_grad_()
    gathered = gather_variable_with_grad(local)  # rank 0: 2 rows, rank 1: 1 row
    assert gathered.tolist() == [[0, 1, 2], [3, 4, 5], [10, 11, 12]]
    (gathered * torch.arange(1., 4.)[:, None]).sum().backward()
    # Each row gets its global weight (1, 2 | 3), summed over the 2 ranks.
    expected = [[2.] * 3, [4.] * 3] if rank == 0 else [[6.] * 3]
    assert local.grad.tolist() == expected
    ints = gather_variable_with_grad(torch.tensor([7 + rank] * (rank + 1)))
    assert ints.dtype == torch.long and ints.tolist() == [7, 8, 8]

    for split, (rank_images, extra_rank) in SPLITS.items():
        batch = make_batch(data, rank_images[rank], ['bird'] if rank == extra_rank else [])
        for i, cfg in enumerate(LOSSES):
            model = DistributedDataParallel(Toy(cfg))
            loss, grads = run_once(model, batch)
            ref_loss, ref_grads = references[rank, split, i]
            where = f'rank {rank}, split {split}, loss {cfg}'
            torch.testing.assert_close(loss, ref_loss, atol=1e-5, rtol=1e-5, msg=where)
            assert set(grads) == set(ref_grads), where
            for name, grad in grads.items():
                torch.testing.assert_close(
                    grad, ref_grads[name], atol=1e-5, rtol=1e-5,
                    msg=lambda m, n=name: f'{where}, grad of {n}: {m}')
            # Free DDP's reducer while the process group lives: destroying it at
            # interpreter exit can deadlock in ~ProcessGroupGloo.
            del model
            gc.collect()


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_two_gloo_processes_match_one_process(tmp_path):
    run_in_processes(_worker, args=(one_process_references(), ), world_size=WORLD_SIZE,
                     tmp_dir=tmp_path)
