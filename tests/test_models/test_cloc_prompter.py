# Copyright (c) cllip_mm contributors. All rights reserved.
"""The paper's Prompter against a plain-PyTorch reference built from
``nn.TransformerEncoderLayer``, its shared computation against the naive one, and the
independence of a prompt's embedding from the other prompts."""
import math

import pytest
import torch
import torch.nn as nn

from cllip_mm.models.prompters import ClocPrompter, ClocRoIPrompter
from cllip_mm.registry import MODELS

C, D, N, GRID = 32, 16, 10, (3, 3)  # 1 class token + a 3 x 3 patch grid


def make_prompter(**kwargs):
    torch.manual_seed(0)
    prompter = MODELS.build(dict(type='ClocPrompter', width=C, embed_dim=D, **kwargs))
    # non-trivial norms and biases, so that a missing term shows
    with torch.no_grad():
        for param in prompter.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return prompter


def sine(value, num_feats):
    """DINO's sine encoding of one coordinate, written out."""
    out = []
    for i in range(num_feats):
        angle = value * 2 * math.pi / 10000**(2 * (i // 2) / num_feats)
        out.append(math.sin(angle) if i % 2 == 0 else math.cos(angle))
    return out


def reference(prompter, tokens, prompts, image_index, pool, keep=None):
    """Each prompt's own sequence [prompt; image tokens] through an independent
    ``nn.TransformerEncoderLayer`` with the prompter's weights, mean-pooled, LayerNorm,
    projection. ``keep``: per prompt, per cell, the indices of the image tokens averaged
    with the prompt tokens (``pool='box'``); the cells are normalised one by one and
    concatenated."""
    layer = nn.TransformerEncoderLayer(C, prompter.heads, dim_feedforward=4 * C, dropout=0.0,
                                       activation='gelu', batch_first=True, norm_first=True)
    layer.load_state_dict(prompter.layer.state_dict())
    out = []
    for p in range(prompts.shape[0]):
        seq = torch.cat([prompts[p], tokens[image_index[p]]])[None]
        hidden = layer(seq)[0]
        t = prompts.shape[1]
        if keep is not None:
            cells = [prompter.ln_out(torch.cat([hidden[:t], hidden[t:][cell]]).mean(0))
                     for cell in keep[p]]
            out.append(prompter.proj(torch.cat(cells)))
            continue
        pooled = hidden.mean(0) if pool == 'all' else hidden[t:].mean(0)
        cells = prompter.ln_out(pooled).repeat(prompter.num_cells)  # a text prompt: every cell
        out.append(prompter.proj(cells))
    return torch.stack(out)


def test_box_tokens_are_the_corner_sine_encodings():
    prompter = make_prompter()
    box = torch.tensor([[[0.25, 0.5, 0.75, 1.0]]])
    tokens = prompter.box_tokens(box)
    assert tokens.shape == (1, 1, 2, C)
    # mmdet's order: the y features, then the x features, of each corner
    top_left = sine(0.5, C // 2) + sine(0.25, C // 2)
    bottom_right = sine(1.0, C // 2) + sine(0.75, C // 2)
    torch.testing.assert_close(tokens[0, 0], torch.tensor([top_left, bottom_right]))
    one = make_prompter(corner_tokens=1).box_tokens(box)
    assert one.shape == (1, 1, 1, C)
    expected = sine(0.5, C // 4) + sine(0.25, C // 4) + sine(0.75, C // 4) + sine(1.0, C // 4)
    # one token: (y1, x1, x2, y2) features; coordinate_to_encoding reads (x, y, w, h) slots
    torch.testing.assert_close(one[0, 0, 0], torch.tensor(expected))


def test_patch_pos_encoding_is_the_corner_basis():
    prompter = make_prompter(patch_pos_encoding=True)
    enc = prompter.patch_encoding((2, 3), 7, torch.zeros(1))
    assert enc.shape == (7, C) and (enc[0] == 0).all()  # the class token gets none
    # patch (row 1, col 2) of a 2 x 3 grid: centre (x, y) = (5/6, 3/4), the corner encoding
    corner = prompter.box_tokens(torch.tensor([[5 / 6, 3 / 4, 1.0, 1.0]]))[0, 0]
    torch.testing.assert_close(enc[1 + 1 * 3 + 2], corner)
    # it enters the context (and so the embeddings); off, the plain tokens
    tokens = torch.randn(1, 7, C)
    on = prompter.image_context(tokens, (2, 3)).tokens
    torch.testing.assert_close(on, tokens + enc)


@pytest.mark.parametrize('pool', ['all', 'image'])
@pytest.mark.parametrize('heads,corner_tokens', [(1, 2), (1, 1), (4, 2)])
@pytest.mark.parametrize('impl', ['shared', 'naive'])
def test_equals_transformer_encoder_layer_reference(pool, heads, corner_tokens, impl):
    prompter = make_prompter(heads=heads, corner_tokens=corner_tokens, pool=pool, impl=impl)
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randn(2, N, C, generator=gen)
    boxes = torch.rand(5, 4, generator=gen).sort(-1).values[:, [0, 1, 2, 3]]
    image_index = torch.tensor([0, 1, 1, 0, 1])
    prompts = prompter.box_tokens(boxes)
    expected = reference(prompter, tokens, prompts, image_index, pool)
    out = prompter(prompter.image_context(tokens, GRID), prompts, image_index)
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=1e-4)
    # text prompts: one token each
    texts = torch.randn(3, D, generator=gen)
    text_index = torch.tensor([1, 0, 1])
    out = prompter(prompter.image_context(tokens, GRID), prompter.text_tokens(texts), text_index)
    expected = reference(prompter, tokens, prompter.text_tokens(texts), text_index, pool)
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=1e-4)


def box_patches(box, grid_hw, cells=1):
    """Per cell of a cells x cells split of the box (row-major), the indices (among the N
    tokens: 1 class token, then the patches row-major) of the patches whose centre is in the
    cell, plus the patch holding the cell centre: written out."""
    h, w = grid_hw
    bx1, by1, bx2, by2 = box.tolist()
    out = []
    for r in range(cells):
        for c in range(cells):
            x1, x2 = bx1 + (bx2 - bx1) * c / cells, bx1 + (bx2 - bx1) * (c + 1) / cells
            y1, y2 = by1 + (by2 - by1) * r / cells, by1 + (by2 - by1) * (r + 1) / cells
            keep = {1 + i * w + j for i in range(h) for j in range(w)
                    if x1 <= (j + 0.5) / w <= x2 and y1 <= (i + 0.5) / h <= y2}
            keep.add(1 + min(int((y1 + y2) / 2 * h), h - 1) * w
                     + min(int((x1 + x2) / 2 * w), w - 1))
            out.append(sorted(keep))
    return out


@pytest.mark.parametrize('impl', ['shared', 'naive'])
def test_box_pool_averages_the_tokens_in_the_box(impl):
    """[ours] pool='box': a box averages its prompt tokens and the patches in it; a text
    prompt still averages every token."""
    prompter = make_prompter(pool='box', impl=impl)
    gen = torch.Generator().manual_seed(5)
    tokens = torch.randn(2, N, C, generator=gen)
    # a box over two columns, a thin box between patch centres (only the centre patch), the
    # whole image
    boxes = torch.tensor([[[0.0, 0.0, 0.6, 1.0], [0.70, 0.1, 0.75, 0.2]],
                          [[0.0, 0.0, 1.0, 1.0], [0.4, 0.4, 0.6, 0.6]]])
    keep = [box_patches(b, GRID) for b in boxes.flatten(0, 1)]
    assert keep[1] == [[1 + 0 * 3 + 2]] and keep[2] == [list(range(1, 10))] and len(keep[0][0]) == 6
    context = prompter.image_context(tokens, GRID)
    out = prompter.embed_boxes(context, boxes)
    expected = reference(prompter, tokens, prompter.box_tokens(boxes.flatten(0, 1)),
                         torch.tensor([0, 0, 1, 1]), 'box', keep)
    torch.testing.assert_close(out.flatten(0, 1), expected, atol=2e-5, rtol=1e-4)
    # moving a box changes which tokens it reads: not the paper's all-token average
    paper = make_prompter(pool='all', impl=impl)
    assert not torch.allclose(out, paper.embed_boxes(paper.image_context(tokens, GRID), boxes),
                              atol=1e-3)
    texts = torch.randn(2, 3, D, generator=gen)
    expected = reference(prompter, tokens, prompter.text_tokens(texts.flatten(0, 1)),
                         torch.tensor([0, 0, 0, 1, 1, 1]), 'all')
    torch.testing.assert_close(prompter.embed_texts(context, texts).flatten(0, 1), expected,
                               atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize('impl', ['shared', 'naive'])
def test_box_grid_keeps_the_layout_in_the_box(impl):
    """[ours] box_grid=2: four cell averages, normalised one by one, concatenated."""
    prompter = make_prompter(pool='box', box_grid=2, impl=impl)
    assert prompter.proj.in_features == 4 * C
    gen = torch.Generator().manual_seed(6)
    tokens = torch.randn(2, N, C, generator=gen)
    # the whole image: cells are the 2 x 2 quadrants of the 3 x 3 grid (the centre patch is in
    # all four); a small box: every cell falls back to the patch holding its centre
    boxes = torch.tensor([[[0.0, 0.0, 1.0, 1.0]], [[0.70, 0.70, 0.80, 0.80]]])
    keep = [box_patches(b, GRID, 2) for b in boxes.flatten(0, 1)]
    assert keep[0] == [[1, 2, 4, 5], [2, 3, 5, 6], [4, 5, 7, 8], [5, 6, 8, 9]]
    assert keep[1] == [[9]] * 4
    weights = prompter.box_pool_weights(boxes.flatten(0, 1), GRID, N)
    assert weights.shape == (2, 4, N)
    assert [w.nonzero().flatten().tolist() for w in weights[0]] == keep[0]
    context = prompter.image_context(tokens, GRID)
    out = prompter.embed_boxes(context, boxes)
    expected = reference(prompter, tokens, prompter.box_tokens(boxes.flatten(0, 1)),
                         torch.tensor([0, 1]), 'box', keep)
    torch.testing.assert_close(out.flatten(0, 1), expected, atol=2e-5, rtol=1e-4)
    # text prompts: the all-token average in every cell
    texts = torch.randn(2, 1, D, generator=gen)
    expected = reference(prompter, tokens, prompter.text_tokens(texts.flatten(0, 1)),
                         torch.tensor([0, 1]), 'all')
    torch.testing.assert_close(prompter.embed_texts(context, texts).flatten(0, 1), expected,
                               atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize('pool,box_grid', [('all', 1), ('box', 1), ('box', 2)])
def test_shared_and_naive_give_the_same_gradients(pool, box_grid):
    outs = {}
    for impl in ('shared', 'naive'):
        prompter = make_prompter(impl=impl, pool=pool, box_grid=box_grid)
        tokens = torch.randn(2, N, C, generator=torch.Generator().manual_seed(2),
                             requires_grad=True)
        boxes = torch.tensor([[[0.1, 0.2, 0.6, 0.9], [0.5, 0.5, 0.7, 0.6]],
                              [[0.0, 0.0, 1.0, 1.0], [0.5, 0.5, 0.7, 0.6]]])
        out = prompter.embed_boxes(prompter.image_context(tokens, GRID), boxes)
        (out * torch.arange(out.numel()).view_as(out).sin()).sum().backward()
        outs[impl] = (tokens.grad, {n: p.grad for n, p in prompter.named_parameters()})
    torch.testing.assert_close(outs['shared'][0], outs['naive'][0], atol=1e-5, rtol=1e-4)
    for name, grad in outs['naive'][1].items():
        if grad is None:  # text_proj has no part in box prompts
            assert outs['shared'][1][name] is None, name
            continue
        torch.testing.assert_close(outs['shared'][1][name], grad, atol=1e-5, rtol=1e-4,
                                   msg=lambda m, n=name: f'{n}: {m}')


def test_a_prompt_does_not_depend_on_the_other_prompts():
    prompter = make_prompter()
    tokens = torch.randn(2, N, C, generator=torch.Generator().manual_seed(3))
    boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.5], [0.2, 0.3, 0.9, 0.8], [0, 0, 1, 1.]],
                          [[0.4, 0.4, 0.6, 0.9], [0.0, 0.5, 0.5, 1.0], [0, 0, 0.2, 0.2]]])
    context = prompter.image_context(tokens, GRID)
    all_boxes = prompter.embed_boxes(context, boxes)
    alone = prompter.embed_boxes(context, boxes[:, :1])
    torch.testing.assert_close(all_boxes[:, :1], alone, atol=1e-6, rtol=1e-5)
    # other boxes replaced, and padding: the kept box is unchanged, padding is zero
    valid = torch.tensor([[True, False, False], [True, True, False]])
    other = prompter.embed_boxes(context, torch.rand(2, 3, 4).sort(-1).values, valid)
    masked = prompter.embed_boxes(context, boxes, valid)
    torch.testing.assert_close(masked[valid], all_boxes[valid], atol=1e-6, rtol=1e-5)
    assert (masked[~valid] == 0).all() and not torch.allclose(other[0, 0], masked[0, 0])
    # the other image in the batch does not matter either
    single = prompter.embed_boxes(prompter.image_context(tokens[1:], GRID), boxes[1:])
    torch.testing.assert_close(single, all_boxes[1:], atol=1e-6, rtol=1e-5)


def test_roi_prompter_pools_the_box():
    torch.manual_seed(0)
    prompter = ClocRoIPrompter(width=C, embed_dim=D, roi_output_size=2)
    # a 6 x 6 patch grid: the vector a in the left half, b in the right half, the class
    # token c (never pooled)
    a, b, c = torch.randn(3, C, generator=torch.Generator().manual_seed(4))
    grid = b[None, :, None, None].repeat(1, 1, 6, 6)
    grid[..., :3] = a[None, :, None, None]
    tokens = torch.cat([c[None, None], grid.flatten(2).transpose(1, 2)], 1)
    context = prompter.image_context(tokens, (6, 6))
    boxes = torch.tensor([[[0.0, 0.0, 1 / 3, 1.0], [2 / 3, 0.2, 1.0, 0.9]]])
    out = prompter.embed_boxes(context, boxes)
    for i, value in enumerate((a, b)):
        expected = prompter.proj(prompter.ln_out(value))
        torch.testing.assert_close(out[0, i], expected, atol=1e-5, rtol=1e-5)
    # changing the layer's weights changes nothing for boxes
    with torch.no_grad():
        prompter.layer.linear1.weight.add_(1.0)
    torch.testing.assert_close(prompter.embed_boxes(context, boxes), out)


def test_bad_arguments():
    with pytest.raises(ValueError, match='corner_tokens'):
        ClocPrompter(C, D, corner_tokens=3)
    with pytest.raises(ValueError, match='pool'):
        ClocPrompter(C, D, pool='cls')
    prompter = ClocPrompter(C, D)
    context = prompter.image_context(torch.randn(1, N, C), GRID)
    with pytest.raises(ValueError, match=r'prompts must be \[P, T, 32\]'):
        prompter(context, torch.randn(2, 16), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match=r'pool_weights must be \[P, K, N\] = \[2, 1, 10\]'):
        prompter(context, torch.randn(2, 2, C), torch.tensor([0, 0]), torch.ones(2, 9))
    with pytest.raises(ValueError, match='box_grid'):
        ClocPrompter(C, D, pool='all', box_grid=2)
    assert prompter(context, torch.randn(0, 2, C), torch.zeros(0, dtype=torch.long)).shape == (0, D)
