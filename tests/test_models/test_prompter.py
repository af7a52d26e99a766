import pytest
import torch

from cllip_mm.models.heads import GroundingHead
from cllip_mm.models.prompters import Prompter


def make_prompter(**kwargs):
    torch.manual_seed(0)
    cfg = dict(width=32, embed_dim=16, num_layers=1, heads=4)
    cfg.update(kwargs)
    return Prompter(**cfg).eval()


def add_noise(module, seed=0):
    """Seeded noise on every weight: no zero-initialised layer passes its input through."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn(param.shape, generator=g) * 0.1)
    return module


def test_roi_features_of_one_patch_box_on_linear_map():
    # On a feature map that is linear in x and y, RoIAlign (aligned=True) of a box that
    # covers exactly patch (row 2, col 3) of a 6x6 grid returns that patch's value.
    prompter = make_prompter(roi_output_size=2)
    ys, xs = torch.meshgrid(torch.arange(6.), torch.arange(6.), indexing='ij')
    fmap = torch.stack([xs, ys] * 16)[None]  # [1, 32, 6, 6]
    box = torch.tensor([[[3 / 6, 2 / 6, 4 / 6, 3 / 6]]])
    feats = prompter.roi_features(fmap, box)
    torch.testing.assert_close(feats[0, 0, :2], torch.tensor([3.0, 2.0]))


def test_region_embedding_independent_of_other_prompts():
    prompter = make_prompter(num_layers=2)
    tokens = torch.randn(2, 32, 6, 6)
    boxes = torch.rand(2, 3, 4).sort(-1).values[..., [0, 1, 2, 3]]
    boxes = torch.stack([boxes[..., 0], boxes[..., 1], boxes[..., 2] + 0.1, boxes[..., 3] + 0.1], -1).clamp(0, 1)
    full = prompter(tokens, boxes)
    alone = prompter(tokens[:1], boxes[:1, 1:2])
    torch.testing.assert_close(full[0, 1], alone[0, 0], atol=1e-5, rtol=1e-5)
    # Padding or reordering other boxes changes nothing either.
    swapped = prompter(tokens, boxes[:, [2, 1, 0]])
    torch.testing.assert_close(full[:, 1], swapped[:, 1], atol=1e-5, rtol=1e-5)


def test_region_embedding_depends_on_box_and_image():
    prompter = make_prompter()
    tokens = torch.randn(1, 32, 6, 6)
    a = prompter(tokens, torch.tensor([[[0.0, 0.0, 0.5, 0.5]]]))
    b = prompter(tokens, torch.tensor([[[0.5, 0.5, 1.0, 1.0]]]))
    c = prompter(tokens + torch.randn_like(tokens), torch.tensor([[[0.0, 0.0, 0.5, 0.5]]]))
    assert not torch.allclose(a, b)
    assert not torch.allclose(a, c)


def test_roi_pooler_ablation_skips_layers():
    """region_pooler='roi': a region's embedding is read from the RoI features alone: the
    same with 1 or 3 Prompter layers (shared weights), and blind to tokens away from the
    box, which the attention of the default pooler does see."""
    tokens = torch.randn(1, 32, 6, 6)
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5]]])  # patches rows / cols 0..2
    far = tokens.clone()
    far[..., 4:, :] += torch.randn(1, 32, 2, 6)  # rows 4, 5 and cols 4, 5: out of
    far[..., :, 4:] += torch.randn(1, 32, 6, 2)  # reach of the box's bilinear samples
    shallow = add_noise(make_prompter(region_pooler='roi', num_layers=1))
    deep = add_noise(make_prompter(region_pooler='roi', num_layers=3), seed=1)
    deep.load_state_dict(shallow.state_dict(), strict=False)  # + 2 layers of its own
    with torch.no_grad():
        roi = shallow(tokens, boxes)
        torch.testing.assert_close(deep(tokens, boxes), roi)
        torch.testing.assert_close(shallow(far, boxes), roi)
        attention = add_noise(make_prompter())
        assert not torch.allclose(attention(far, boxes), attention(tokens, boxes))


def test_grounding_head_outputs_normalised_cxcywh():
    prompter = make_prompter()
    head = GroundingHead(embed_dim=16, width=32)
    boxes = head(torch.randn(2, 3, 16), torch.randn(2, 32, 6, 6), prompter)
    assert boxes.shape == (2, 3, 4)
    assert bool(((boxes > 0) & (boxes < 1)).all())


def test_roi_sources_patch_embed_and_both():
    tokens, embeds = torch.randn(1, 32, 6, 6), torch.randn(1, 32, 6, 6)
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5]]])
    stem = make_prompter(roi_sources=('patch_embed', ))
    # The stem map is required when it is a source.
    with pytest.raises(ValueError, match='patch_embed'):
        stem(tokens, boxes)
    both = make_prompter(roi_sources=('final', 'patch_embed'))
    assert set(both.roi_proj) == {'final', 'patch_embed'}
    a = both(tokens, boxes, embeds)
    b = both(tokens, boxes, embeds + 1.0)
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match='roi_sources'):
        make_prompter(roi_sources=('nope', ))


def test_context_sources_add_stem_tokens_to_what_layers_attend_to():
    """context_sources=('final', 'patch_embed'): the stem's map reaches the region
    embeddings (no RoI source reads it) and the grounding boxes; with ('final', ) alone
    neither depends on it."""
    tokens, embeds = torch.randn(1, 32, 6, 6), torch.randn(1, 32, 6, 6)
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5]]])
    text = torch.randn(1, 2, 16)
    head = GroundingHead(embed_dim=16, width=32).eval()
    with torch.no_grad():
        both = add_noise(make_prompter(context_sources=('final', 'patch_embed')))
        assert not torch.allclose(both(tokens, boxes, embeds), both(tokens, boxes, embeds + 1.0))
        assert not torch.allclose(head(text, tokens, both, embeds),
                                  head(text, tokens, both, embeds + 1.0))
        final = add_noise(make_prompter(context_sources=('final', )))
        torch.testing.assert_close(final(tokens, boxes, embeds), final(tokens, boxes, embeds + 1.0))
        torch.testing.assert_close(head(text, tokens, final, embeds),
                                   head(text, tokens, final, embeds + 1.0))
    with pytest.raises(ValueError, match='patch_embed'):
        head(text, tokens, both)
    with pytest.raises(ValueError, match="must contain 'final'"):
        make_prompter(context_sources=('patch_embed', ))


def test_context_pos_encoding_tells_positions_apart():
    """Without RoI content (roi_sources=()), a box's prompt reads the image by attention
    alone, a set operation: mirroring the token map changes nothing, unless the image
    tokens carry their position (context_pos_encoding)."""
    tokens = torch.randn(1, 32, 6, 6)
    mirrored = tokens.flip(-1)
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.2, 0.4, 0.9, 1.0]]])
    with torch.no_grad():
        plain = add_noise(make_prompter(roi_sources=()))
        torch.testing.assert_close(plain(mirrored, boxes), plain(tokens, boxes),
                                   atol=1e-5, rtol=1e-5)
        positional = add_noise(make_prompter(roi_sources=(), context_pos_encoding=True))
        assert not torch.allclose(positional(mirrored, boxes), positional(tokens, boxes),
                                  atol=1e-3)


# ---------------------------------------------------------------- memory layout
def _layouts(x):
    return {
        'contiguous': x.contiguous(),
        'channels_last': x.contiguous(memory_format=torch.channels_last),
        # What ``patches.transpose(1, 2).unflatten(...)`` of a ViT gives: same values,
        # [B, h, w, C] storage.
        'transposed_view': x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2),
    }


def test_roi_features_are_exact_patch_means_in_every_layout():
    """A box covering whole patches, pooled with one sample per patch, is their mean."""
    prompter = make_prompter(roi_output_size=3, roi_sampling_ratio=1)
    g = torch.Generator().manual_seed(1)
    fmap = torch.randn(2, 32, 6, 8, generator=g)  # h=6, w=8
    # rows 1..3, cols 2..4 of image 0; rows 3..5, cols 5..7 of image 1 (3x3 patches each)
    boxes = torch.tensor([[[2 / 8, 1 / 6, 5 / 8, 4 / 6]], [[5 / 8, 3 / 6, 8 / 8, 6 / 6]]])
    expected = torch.stack([fmap[0, :, 1:4, 2:5].mean((1, 2)), fmap[1, :, 3:6, 5:8].mean((1, 2))])
    for name, tokens in _layouts(fmap).items():
        got = prompter.roi_features(tokens, boxes)[:, 0]
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.parametrize('sources', [dict(roi_sources=('final', ), context_sources=('final', )),
                                     dict(roi_sources=('patch_embed', 'final'),
                                          context_sources=('final', 'patch_embed'),
                                          context_pos_encoding=True)])
def test_region_embeddings_do_not_depend_on_memory_layout(sources):
    prompter = make_prompter(num_layers=2, **sources)
    g = torch.Generator().manual_seed(2)
    tokens, embeds = torch.randn(2, 32, 6, 6, generator=g), torch.randn(2, 32, 6, 6, generator=g)
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.3, 0.2, 0.9, 1.0]],
                          [[0.5, 0.5, 1.0, 1.0], [0.1, 0.6, 0.4, 0.9]]])
    with torch.no_grad():
        expected = prompter(tokens, boxes, embeds)
        for t_name, t in _layouts(tokens).items():
            for e_name, e in _layouts(embeds).items():
                torch.testing.assert_close(prompter(t, boxes, e), expected, atol=1e-5, rtol=1e-5,
                                           msg=f'{t_name} tokens, {e_name} embeds')


def test_flatten_roi_pool_keeps_the_layout_in_the_box():
    """Two boxes with the same content mirrored: the grid mean cannot tell them apart,
    the flattened grid can (what lets the Prompter read an object's shape)."""
    fmap = torch.zeros(1, 32, 4, 8)
    fmap[0, 0, :, 0:2] = 1.0   # box A (cols 0..3): signal on its left half
    fmap[0, 0, :, 6:8] = 1.0   # box B (cols 4..7): signal on its right half
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]]])
    mean = make_prompter(roi_output_size=2, roi_sampling_ratio=1, roi_pool='mean')
    flat = make_prompter(roi_output_size=2, roi_sampling_ratio=1, roi_pool='flatten')
    m = mean.roi_features(fmap, boxes)
    f = flat.roi_features(fmap, boxes)
    assert m.shape == (1, 2, 32) and f.shape == (1, 2, 32 * 4)
    torch.testing.assert_close(m[0, 0], m[0, 1])
    assert not torch.allclose(f[0, 0], f[0, 1])
    torch.testing.assert_close(f[0, 0].view(32, 2, 2).flip(-1), f[0, 1].view(32, 2, 2))
    assert flat(fmap, boxes).shape == (1, 2, 16)
    with pytest.raises(ValueError, match='roi_pool'):
        make_prompter(roi_pool='max')


def test_grounding_head_own_layers_deepen_grounding_only():
    """``num_layers`` adds grounding-only layers: the boxes change, each prompt stays
    independent of the others, and the region embeddings do not change."""
    prompter = make_prompter()
    torch.manual_seed(1)
    shallow = GroundingHead(embed_dim=16, width=32).eval()
    torch.manual_seed(1)
    deep = GroundingHead(embed_dim=16, width=32, num_layers=2, heads=4).eval()
    assert len(deep.layers) == 2 and len(shallow.layers) == 0
    texts, tokens = torch.randn(2, 3, 16), torch.randn(2, 32, 6, 6)
    with torch.no_grad():
        boxes = deep(texts, tokens, prompter)
        assert not torch.allclose(boxes, shallow(texts, tokens, prompter))
        alone = deep(texts[:, :1], tokens, prompter)
    torch.testing.assert_close(boxes[:, :1], alone)
    assert sum(p.numel() for p in deep.parameters()) > sum(p.numel() for p in shallow.parameters())


def head_with_zeroed_box_mlp(box_mode: str, seed: int) -> GroundingHead:
    """A grounding head whose box MLP outputs 0 (boxes at their anchor, size 0.5)."""
    torch.manual_seed(seed)
    head = GroundingHead(embed_dim=16, width=32, box_mode=box_mode).eval()
    torch.nn.init.zeros_(head.box_head.layers[-1].weight)
    torch.nn.init.zeros_(head.box_head.layers[-1].bias)
    return head


def test_anchored_grounding_box_centre_is_the_score_weighted_token_centre():
    """With the box MLP's last layer zeroed, an 'anchored' box sits at the softmax-weighted
    mean of the token centres (x along the width, y along the height) with size 0.5: at
    the image centre on a constant map (equal scores), and, on any map, weighted by the
    phrase's token scores that a 'token' head with the same weights is trained on."""
    prompter = make_prompter()
    head = head_with_zeroed_box_mlp('anchored', seed=2)
    texts = torch.randn(2, 3, 16)
    with torch.no_grad():
        flat = head(texts, torch.ones(2, 32, 4, 6), prompter)
    torch.testing.assert_close(flat, torch.full_like(flat, 0.5))

    tokens = torch.randn(2, 32, 4, 6)  # h=4, w=6
    token_head = GroundingHead(embed_dim=16, width=32, box_mode='token')
    token_head.load_state_dict(head.state_dict())
    with torch.no_grad():
        boxes = head(texts, tokens, prompter)
        scores = token_head.forward_train(texts, tokens, prompter, torch.zeros(2, 3, 4),
                                          torch.ones(2, 3, dtype=torch.bool)).token_logits
    weights = scores.view(2, 3, 24).softmax(-1)
    xs = ((torch.arange(6) + 0.5) / 6).repeat(4)  # row-major: x varies fastest
    ys = ((torch.arange(4) + 0.5) / 4).repeat_interleave(6)
    torch.testing.assert_close(boxes[..., 0], weights @ xs, atol=1e-4, rtol=0)
    torch.testing.assert_close(boxes[..., 1], weights @ ys, atol=1e-4, rtol=0)
    torch.testing.assert_close(boxes[..., 2:], torch.full_like(boxes[..., 2:], 0.5))
    with torch.no_grad():  # prompts stay independent of each other
        torch.testing.assert_close(head(texts[:, 1:2], tokens, prompter), boxes[:, 1:2])
    with pytest.raises(ValueError, match='box_mode'):
        GroundingHead(embed_dim=16, width=32, box_mode='heatmap')


def test_token_grounding_reads_the_box_at_the_best_scoring_token():
    """'token' mode: with the box MLP's last layer zeroed, the box sits at the centre of the
    token that the phrase scores highest (the scores forward_train trains), size 0.5."""
    prompter = make_prompter()
    head = head_with_zeroed_box_mlp('token', seed=3)
    texts, tokens = torch.randn(2, 3, 16), torch.randn(2, 32, 4, 6)  # h=4, w=6
    with torch.no_grad():
        boxes = head(texts, tokens, prompter)
        scores = head.forward_train(texts, tokens, prompter, torch.zeros(2, 3, 4),
                                    torch.ones(2, 3, dtype=torch.bool)).token_logits
    best = scores.argmax(-1).view(2, 3)
    row, col = best // 6, best % 6
    torch.testing.assert_close(boxes[..., 0], (col + 0.5) / 6)
    torch.testing.assert_close(boxes[..., 1], (row + 0.5) / 4)
    torch.testing.assert_close(boxes[..., 2:], torch.full_like(boxes[..., 2:], 0.5))
    with torch.no_grad():  # prompts stay independent of each other
        torch.testing.assert_close(head(texts[:, 1:2], tokens, prompter), boxes[:, 1:2])


def test_token_grounding_training_targets():
    """forward_train: the cross-entropy target is the token holding the box centre; boxes are
    read at every token whose centre is inside the box (and at the centre's token for a box
    holding no token centre), each region's weights summing to 1."""
    prompter = make_prompter()
    head = GroundingHead(embed_dim=16, width=32, box_mode='token')
    texts, tokens = torch.randn(2, 2, 16), torch.randn(2, 32, 4, 4)  # 4 x 4 grid, cells of 0.25
    target_boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5],     # centre (0.25, 0.25): token 5
                                  [0.0, 0.0, 0.0, 0.0]],    # padding
                                 [[0.55, 0.8, 0.65, 0.9],   # tiny, centre in token 14
                                  [0.3, 0.05, 1.0, 0.45]]])  # wide: centre token 6
    valid = torch.tensor([[True, False], [True, True]])
    out = head.forward_train(texts, tokens, prompter, target_boxes, valid)
    assert out.token_targets.tolist() == [5, 14, 6]
    assert out.token_logits.shape == (3, 16)
    # region 0: token centres (0.125 | 0.375)^2 -> tokens 0, 1, 4, 5; region 1: token 14;
    # region 2: x in {0.375, 0.625, 0.875}, y in {0.125, 0.375} -> 1, 2, 3, 5, 6, 7
    assert len(out.boxes) == 4 + 1 + 6
    torch.testing.assert_close(out.box_targets[:5], target_boxes[[0, 0, 0, 0, 1], [0, 0, 0, 0, 0]])
    torch.testing.assert_close(out.box_weights, torch.tensor([0.25] * 4 + [1.0] + [1 / 6] * 6))
    # each box is read at its token: with the box MLP's last layer zeroed, at the token's
    # centre with size 0.5 (tokens 0, 1, 4, 5 | 14 | 1, 2, 3, 5, 6, 7 of the 4 x 4 grid)
    torch.nn.init.zeros_(head.box_head.layers[-1].weight)
    torch.nn.init.zeros_(head.box_head.layers[-1].bias)
    at_centres = head.forward_train(texts, tokens, prompter, target_boxes, valid).boxes.detach()
    read_at = torch.tensor([0, 1, 4, 5, 14, 1, 2, 3, 5, 6, 7])
    centres = torch.stack([(read_at % 4 + 0.5) / 4, (read_at // 4 + 0.5) / 4], -1)
    torch.testing.assert_close(at_centres, torch.cat([centres, torch.full((11, 2), 0.5)], -1))
    # the MLP head: one box per valid region, no token terms
    mlp = GroundingHead(embed_dim=16, width=32).forward_train(texts, tokens, prompter,
                                                             target_boxes, valid)
    assert mlp.boxes.shape == (3, 4) and mlp.box_weights is None and mlp.token_logits is None


def test_token_grounding_rescoring_keeps_the_candidate_closest_to_the_phrase():
    """rescore_topk = N (every token a candidate): the box is the one, among the boxes read
    at all tokens (forward_train's boxes for a target box holding every token centre), whose
    region embedding (the Prompter on it) best matches the phrase."""
    from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
    prompter = make_prompter()
    torch.manual_seed(4)
    head = GroundingHead(embed_dim=16, width=32, box_mode='token', rescore_topk=24).eval()
    texts, tokens = torch.randn(1, 2, 16), torch.randn(1, 32, 4, 6)
    whole = torch.tensor([[[0.0, 0.0, 1.0, 1.0]] * 2])
    with torch.no_grad():
        boxes = head(texts, tokens, prompter)
        every = head.forward_train(texts, tokens, prompter, whole,
                                   torch.ones(1, 2, dtype=torch.bool)).boxes.view(2, 24, 4)
        for r in range(2):
            embeds = prompter(tokens, bbox_cxcywh_to_xyxy(every[r]).clamp(0, 1)[None])[0]
            best = torch.nn.functional.cosine_similarity(embeds, texts[0, r][None]).argmax()
            torch.testing.assert_close(boxes[0, r], every[r, best])
        head.rescore_topk = 1  # without rescoring: the best-scoring token's box, here another
        assert not torch.allclose(head(texts, tokens, prompter), boxes)


def test_token_grounding_refinement_starts_as_the_identity_and_learns_apart():
    prompter = make_prompter()
    torch.manual_seed(5)
    head = GroundingHead(embed_dim=16, width=32, box_mode='token', refine=True)
    head.init_weights()
    plain = GroundingHead(embed_dim=16, width=32, box_mode='token')
    plain.load_state_dict(head.state_dict(), strict=False)
    texts, tokens = torch.randn(2, 3, 16), torch.randn(2, 32, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(head.eval()(texts, tokens, prompter),
                                   plain.eval()(texts, tokens, prompter))
    target_boxes = torch.tensor([[0.1, 0.1, 0.6, 0.5]]).expand(2, 3, 4)
    out = head.train().forward_train(texts, tokens, prompter, target_boxes,
                                     torch.ones(2, 3, dtype=torch.bool))
    # refined: the centre token's box of each region (+ the best token's when on the box)
    assert len(out.refined_boxes) >= 6 and out.refine_weights.max() <= 1
    torch.testing.assert_close(out.refined_boxes, out.boxes[out.refine_index])  # identity
    assert out.refine_weights.sum().item() == pytest.approx(6.0)  # each region's sum to 1
    out.refined_boxes.sum().backward()
    assert all(p.grad is None for p in head.box_head.parameters())  # the first box is detached
    assert head.refine_head.layers[-1].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='refine'):
        GroundingHead(embed_dim=16, width=32, refine=True)
    with pytest.raises(ValueError, match='rescore_topk'):
        GroundingHead(embed_dim=16, width=32, box_mode='anchored', rescore_topk=3)
