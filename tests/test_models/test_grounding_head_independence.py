# Copyright (c) cllip_mm contributors. All rights reserved.
"""GroundingHead: the box of one text prompt does not depend on the other prompts."""
import pytest
import torch

from cllip_mm.models import GroundingHead, Prompter


@pytest.fixture(scope='module', params=[
    dict(), dict(box_mode='token', refine=True, rescore_topk=4)], ids=['mlp', 'token'])
def head_and_prompter(request):
    torch.manual_seed(0)
    prompter = Prompter(width=32, embed_dim=16, num_layers=2, heads=4,
                        context_pos_encoding=True).eval()
    head = GroundingHead(embed_dim=16, width=32, **request.param).eval()
    with torch.no_grad():  # zero-initialised type embeddings: make every part count
        for param in [*prompter.parameters(), *head.parameters()]:
            param.add_(torch.randn_like(param) * 0.05)
    return head, prompter


def test_one_prompt_alone_equals_the_same_prompt_among_others(head_and_prompter):
    head, prompter = head_and_prompter
    tokens = torch.randn(2, 32, 5, 6)
    texts = torch.randn(2, 4, 16)
    with torch.no_grad():
        together = head(texts, tokens, prompter)
        assert together.shape == (2, 4, 4)
        for b in range(2):
            for r in range(4):
                alone = head(texts[b:b + 1, r:r + 1], tokens[b:b + 1], prompter)
                torch.testing.assert_close(alone[0, 0], together[b, r], atol=1e-5, rtol=1e-5)


def test_changing_or_reordering_other_prompts_changes_nothing(head_and_prompter):
    head, prompter = head_and_prompter
    tokens = torch.randn(1, 32, 5, 6)
    texts = torch.randn(1, 3, 16)
    other = texts.clone()
    other[:, [0, 2]] = torch.randn(1, 2, 16) * 3  # prompt 1 kept, its neighbours changed
    with torch.no_grad():
        boxes = head(texts, tokens, prompter)
        changed = head(other, tokens, prompter)
        reordered = head(texts[:, [2, 0, 1]], tokens, prompter)
        padded = head(torch.cat([texts, torch.zeros(1, 5, 16)], dim=1), tokens, prompter)
    torch.testing.assert_close(changed[:, 1], boxes[:, 1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(reordered[:, [1, 2, 0]], boxes, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded[:, :3], boxes, atol=1e-5, rtol=1e-5)
    # and the prompts do matter: the changed ones moved their boxes
    assert (changed[:, [0, 2]] - boxes[:, [0, 2]]).abs().max() > 1e-3


def test_cloc_grounds_each_phrase_independently_of_the_others(tiny_cloc_checkpoint):
    """Through CLOC.ground (what the inferencer calls): a phrase's box is the same
    whether it is grounded alone or with other phrases, in a batch or not."""
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint

    from cllip_mm.registry import MODELS
    from cllip_mm.utils import register_all_modules
    register_all_modules()
    cfg_path, ckpt_path = tiny_cloc_checkpoint
    model = MODELS.build(Config.fromfile(cfg_path).model)
    load_checkpoint(model, ckpt_path, map_location='cpu')
    model.eval()
    torch.manual_seed(1)
    images = torch.randn(2, 3, 32, 32)
    phrases = [['red circle', 'blue square', 'orange star'], ['blue square']]
    with torch.no_grad():
        together = model.ground(images, phrases)
        alone = [model.ground(images[b:b + 1], [[p]])[0][0]
                 for b in range(2) for p in phrases[b]]
    assert [len(boxes) for boxes in together] == [3, 1]
    torch.testing.assert_close(torch.cat(together), torch.stack(alone), atol=1e-5, rtol=1e-5)
    assert (together[0][0] - together[0][1]).abs().max() > 1e-4  # phrases do matter
