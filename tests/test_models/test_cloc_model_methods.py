"""The inference methods of ``CLOC`` / ``VisionTransformer`` (what ``RegionInferencer``,
the metrics and the mmdet plugins call) against references written out here in plain
torch from the public API, on a tiny random model (noise on every weight)."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData

from cllip_mm.models.backbones import VisionTransformer
from cllip_mm.models.multimodal.cloc import patch_grid_boxes
from cllip_mm.models.utils import (
    LOGIT_SCALE_CAP,
    MAX_LOGIT_SCALE,
    ClassEmbeddingCacheMixin,
    score_regions,
    strip_module_prefix,
    strip_module_prefixes,
)
from cllip_mm.registry import MODELS
from cllip_mm.structures import RegionTextDataSample
from cllip_mm.utils import register_all_modules

register_all_modules()
ATOL = 1e-5


def noisy(model, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return model.eval()


@pytest.fixture(scope='module')
def build(tiny_region_set, tiny_cloc_cfg_factory, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('cloc_model_methods'))

    def make(**model_overrides):
        cfg = tiny_cloc_cfg_factory(tiny_region_set, work_dir)
        cfg.model.update(model_overrides)
        torch.manual_seed(0)
        return noisy(MODELS.build(cfg.model))
    return make


@pytest.fixture
def model(build):
    return build()


def images(b=2, h=32, w=48, seed=1):
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def cos(a, b):
    return (a / a.norm(dim=-1, keepdim=True)) @ (b / b.norm(dim=-1, keepdim=True)).t()


# ------------------------------------------------------------------ VisionTransformer
@pytest.mark.parametrize('norm', ['none', 'ln_post'])
def test_project_patch_tokens_is_ln_post_then_proj_per_patch(norm):
    torch.manual_seed(0)
    vit = noisy(VisionTransformer(img_size=32, patch_size=8, width=32, layers=1, heads=2,
                                  embed_dim=16, patch_token_norm=norm))
    x = images()  # 32 x 48: a 4 x 6 grid, to see rows from columns
    with torch.no_grad():
        out = vit(x)
        projected = vit.project_patch_tokens(out.patch_tokens)
        # reference: the last block's output sequence, patches only (row-major), LayerNorm
        # written out with ln_post's weights, then the projection matrix
        seq = out.tokens[:, 1:]
        mean = seq.mean(-1, keepdim=True)
        var = seq.var(-1, unbiased=False, keepdim=True)
        normed = (seq - mean) / torch.sqrt(var + vit.ln_post.eps)
        expected = (normed * vit.ln_post.weight + vit.ln_post.bias) @ vit.proj
    assert projected.shape == (2, 4 * 6, 16)
    torch.testing.assert_close(projected, expected, atol=ATOL, rtol=1e-4)
    # the class token through the same path is the image embedding
    cls = out.tokens[:, 0]
    cls = ((cls - cls.mean(-1, keepdim=True))
           / torch.sqrt(cls.var(-1, unbiased=False, keepdim=True) + vit.ln_post.eps))
    torch.testing.assert_close(out.image_embed, (cls * vit.ln_post.weight + vit.ln_post.bias)
                               @ vit.proj, atol=ATOL, rtol=1e-4)


# ------------------------------------------------------------------ temperature
def test_region_logit_scale_reads_the_region_loss_then_the_clip_loss(build):
    model = build()
    with torch.no_grad():
        model.region_loss.logit_scale.fill_(math.log(30.))
        model.clip_loss.logit_scale.fill_(math.log(7.))
    assert model.region_logit_scale() == pytest.approx(30., rel=1e-6)
    with torch.no_grad():
        model.region_loss.logit_scale.fill_(math.log(1000.))
    assert model.region_logit_scale() == LOGIT_SCALE_CAP == 100.

    # a region loss that shares the image-text temperature (the paper's config)
    shared = build(region_loss=dict(type='RegionTextContrastiveLoss', share_logit_scale=True))
    assert shared.region_loss.logit_scale is None
    with torch.no_grad():
        shared.clip_loss.logit_scale.fill_(math.log(12.))
    assert shared.region_logit_scale() == pytest.approx(12., rel=1e-6)

    # the CLIP baseline: no region loss
    clip = build(region_loss=None, grounding_loss=None, grounding_head=None)
    with torch.no_grad():
        clip.clip_loss.logit_scale.fill_(math.log(5.))
    assert clip.region_logit_scale() == pytest.approx(5., rel=1e-6)


def test_one_logit_scale_cap():
    from cllip_mm.models.converters import mmdet_plugins
    from cllip_mm.models.losses import ClipContrastiveLoss, RegionTextContrastiveLoss
    assert MAX_LOGIT_SCALE == math.log(100.) and LOGIT_SCALE_CAP == 100.
    assert ClipContrastiveLoss().max_logit_scale == MAX_LOGIT_SCALE
    assert RegionTextContrastiveLoss().max_logit_scale == MAX_LOGIT_SCALE
    state = {'prompter.x': torch.zeros(1), 'region_loss.logit_scale': torch.tensor(9.)}
    out, _ = mmdet_plugins.convert_cllip_state_dict(state, parts=('prompter', ))
    assert float(out['logit_scale']) == pytest.approx(math.log(100.))


# ------------------------------------------------------------------ scoring
def test_score_regions_equals_a_written_out_softmax(model):
    g = torch.Generator().manual_seed(2)
    regions = F.normalize(torch.randn(5, 16, generator=g), dim=-1)
    classes = F.normalize(torch.randn(7, 16, generator=g), dim=-1)
    with torch.no_grad():
        model.region_loss.logit_scale.fill_(math.log(20.))
    similarity, probs = model.score_regions(regions, classes)
    r, c = regions.double(), classes.double()
    expected_sim = torch.tensor([[sum(r[i, k] * c[j, k] for k in range(16)) for j in range(7)]
                                 for i in range(5)], dtype=torch.float64)
    logits = 20. * expected_sim
    expected_probs = torch.exp(logits - logits.max(1, keepdim=True).values)
    expected_probs /= expected_probs.sum(1, keepdim=True)
    torch.testing.assert_close(similarity.double(), expected_sim, atol=1e-6, rtol=0)
    torch.testing.assert_close(probs.double(), expected_probs, atol=1e-5, rtol=0)
    # batched [B, R, D] gives the same rows; the plain function with the same scale too
    batched = model.score_regions(regions[None].expand(3, -1, -1), classes)
    torch.testing.assert_close(batched.probs[2], probs)
    torch.testing.assert_close(score_regions(regions, classes, 20.).probs, probs)


def test_class_embeddings_templates_and_one_cache(model):
    names, templates = ['red circle', 'blue square'], ('a {}.', 'the {} here')
    with torch.no_grad():
        got = model.class_embeddings(names, model.phrase_context_length, templates)
        # reference: every filled template as a phrase, normalised, mean, normalised
        rows = []
        for name in names:
            embeds = torch.stack([model.embed_phrases([t.format(name)])[0] for t in templates])
            mean = (embeds / embeds.norm(dim=-1, keepdim=True)).mean(0)
            rows.append(mean / mean.norm())
    torch.testing.assert_close(got, torch.stack(rows), atol=ATOL, rtol=1e-4)
    # cached until train() / a state-dict load
    assert model.class_embeddings(names, model.phrase_context_length, templates) is got
    model.train()
    model.eval()
    assert model.class_embeddings(names, model.phrase_context_length, templates) is not got
    # default templates: test_cfg.prompt_templates
    with torch.no_grad():
        default = model.class_embeddings(names, model.phrase_context_length)
        single = model.embed_phrases([model.test_cfg['prompt_templates'][0].format(n)
                                      for n in names])
    if len(model.test_cfg['prompt_templates']) == 1:
        torch.testing.assert_close(default, single, atol=ATOL, rtol=1e-4)
    with pytest.raises(ValueError, match='{}'):
        model.class_embeddings(names, templates=['no slot'])


def test_class_embedding_cache_keeps_the_newest_keys():
    class Cached(ClassEmbeddingCacheMixin, torch.nn.Module):
        class_embed_cache_size = 2

    module, calls = Cached(), []

    def compute(key):
        calls.append(key)
        return torch.tensor(float(len(calls)))

    for key in ('a', 'b', 'a', 'c', 'a', 'b'):
        module.cached_class_embeddings(key, lambda k=key: compute(k))
    # a, b computed; a cached; c evicts a; a evicts b; b recomputed
    assert calls == ['a', 'b', 'c', 'a', 'b']


# ------------------------------------------------------------------ regions and grounding
def test_embed_sample_regions_equals_one_image_at_a_time(model):
    x = images(2)
    boxes = [torch.tensor([[2., 3., 20., 30.], [10., 0., 48., 16.]]), torch.tensor([[0., 0., 8., 8.]])]
    samples = []
    for b in boxes:
        s = RegionTextDataSample()
        s.gt_regions = InstanceData(bboxes=b, phrases=['x'] * len(b))
        samples.append(s)
    with torch.no_grad():
        got = model.embed_sample_regions(x, samples)
        for i, b in enumerate(boxes):
            normalised = b / torch.tensor([48., 32., 48., 32.])
            expected = model.embed_regions(x[i:i + 1], normalised[None])[0]
            assert got[i].shape == (len(b), 16)
            torch.testing.assert_close(got[i], expected, atol=ATOL, rtol=1e-4)
    empty = [RegionTextDataSample() for _ in range(2)]
    for s in empty:
        s.gt_regions = InstanceData(bboxes=torch.zeros(0, 4), phrases=[])
    assert [e.shape for e in model.embed_sample_regions(x, empty)] == [(0, 16), (0, 16)]


def test_ground_with_scores_is_ground_plus_cosine_of_the_boxes(model):
    x = images(2)
    texts = [['red circle', 'blue square', 'red circle'], ['green triangle']]
    with torch.no_grad():
        out = model.ground_with_scores(x, texts)
        boxes = model.ground(x, texts)
        assert out.boxes.shape == (2, 3, 4) and out.valid.tolist() == [[1, 1, 1], [1, 0, 0]]
        for i, phrases in enumerate(texts):
            torch.testing.assert_close(out.boxes[i, :len(phrases)], boxes[i], atol=ATOL, rtol=0)
            region = model.embed_regions(x[i:i + 1], boxes[i][None])[0]
            expected = (cos(region, model.embed_phrases(phrases))).diagonal()
            torch.testing.assert_close(out.scores[i, :len(phrases)], expected, atol=ATOL,
                                       rtol=1e-4)
    assert out.scores[1, 1:].abs().sum() == 0
    torch.testing.assert_close(out.phrase_embeds, model.embed_phrases(texts[0] + texts[1]),
                               atol=ATOL, rtol=1e-4)
    none = model.ground_with_scores(x, [[], []])
    assert none.boxes.shape == (2, 0, 4) and none.scores.shape == (2, 0)


# ------------------------------------------------------------------ dense maps
def test_patch_grid_boxes_written_out():
    boxes = patch_grid_boxes((16, 24), 8, 2.0)  # a 2 x 3 grid
    assert boxes.shape == (6, 4)
    # patch (row 1, col 2): centre (20, 12) px, 16 px wide; normalised by (w, h) = (24, 16)
    # and clipped to the input
    torch.testing.assert_close(boxes[1 * 3 + 2], torch.tensor([12 / 24, 4 / 16, 1., 1.]))
    torch.testing.assert_close(boxes[0], torch.tensor([0., 0., 12 / 24, 12 / 16]))


@pytest.mark.parametrize('window', [1.0, 2.5])
def test_similarity_grid_prompter_is_the_cosine_of_one_box_per_patch(model, window):
    x = images(2)  # 32 x 48 input, patch 8: 4 rows, 6 columns
    texts = [['red circle', 'blue square'], ['green triangle']]
    with torch.no_grad():
        grids = model.similarity_grids(x, texts, 'prompter', window)
        assert [g.shape for g in grids] == [(2, 4, 6), (1, 4, 6)]
        for i, j in [(0, 0), (2, 5), (3, 1)]:
            cy, cx, half = (i + 0.5) * 8, (j + 0.5) * 8, window * 8 / 2
            box = torch.tensor([[[(cx - half) / 48, (cy - half) / 32,
                                  (cx + half) / 48, (cy + half) / 32]]]).clamp(0, 1)
            for b in range(2):
                region = model.embed_regions(x[b:b + 1], box)[0]
                expected = cos(region, model.embed_phrases(texts[b]))[0]
                torch.testing.assert_close(grids[b][:, i, j], expected, atol=ATOL, rtol=1e-4)


def test_similarity_grid_patch_is_the_cosine_of_the_projected_patch_token(model):
    x = images(1)
    texts = [['red circle', 'blue square']]
    vit = model.image_encoder
    with torch.no_grad():
        grid = model.similarity_grids(x, texts, 'patch')[0]
        tokens = vit(x).tokens[0, 1:]  # [24, C], row-major
        if vit.patch_token_norm == 'none':
            tokens = F.layer_norm(tokens, (tokens.shape[-1], ), vit.ln_post.weight,
                                  vit.ln_post.bias, vit.ln_post.eps)
        expected = cos(tokens @ vit.proj, model.embed_phrases(texts[0])).t().reshape(2, 4, 6)
    torch.testing.assert_close(grid, expected, atol=ATOL, rtol=1e-4)
    with pytest.raises(ValueError, match='mode'):
        model.embed_patches(x, mode='pixels')


def test_predict_scores_are_score_regions_similarity(model):
    x = images(1)
    sample = RegionTextDataSample(metainfo=dict(vocabulary=['red circle', 'blue square']))
    sample.gt_regions = InstanceData(bboxes=torch.tensor([[2., 3., 20., 30.]]),
                                     phrases=['red circle'])
    with torch.no_grad():
        pred = model.predict(x, [sample])[0].pred_regions
        class_embeds = model.class_embeddings(['red circle', 'blue square'],
                                              model.phrase_context_length)
    torch.testing.assert_close(pred.scores, cos(pred.embeds, class_embeds), atol=ATOL, rtol=1e-4)


# ------------------------------------------------------------------ checkpoints
def test_module_prefix_stripped_once_and_only_in_front():
    assert strip_module_prefix('module.image_encoder.proj') == 'image_encoder.proj'
    assert strip_module_prefix('module.module.x') == 'module.x'
    assert strip_module_prefix('prompter.module.x') == 'prompter.module.x'
    state = {'module.a': 1, 'b': 2}
    assert list(strip_module_prefixes(state).items()) == [('a', 1), ('b', 2)]
