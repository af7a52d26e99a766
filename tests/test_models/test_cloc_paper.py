"""The paper's CLOC end to end on real files: its Prompter and grounding head inside CLOC,
the L2 grounding loss, the single lambda, and predictions."""
import pytest
import torch
from mmengine.dataset import pseudo_collate

from cllip_mm.registry import DATASETS, MODELS
from cllip_mm.utils import register_all_modules

register_all_modules()


def paper_cfg(make_tiny_cloc_cfg, **model):
    cfg = make_tiny_cloc_cfg()
    parts = dict(
        prompter=dict(type='ClocPrompter', width=32, embed_dim=16, heads=1),
        grounding_head=dict(type='ClocGroundingHead', embed_dim=16),
        grounding_loss=None,
        region_loss=dict(type='RegionTextContrastiveLoss', share_logit_scale=True,
                         text_filter_threshold=0.9),
        region_loss_weighting='image_fraction')
    parts.update(model)
    for key, value in parts.items():  # replace, not merge
        cfg.model[key] = value
    return cfg


def build(cfg):
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    train_set = DATASETS.build(cfg.train_dataloader.dataset)
    val_set = DATASETS.build(cfg.val_dataloader.dataset)
    return model, train_set, val_set


def batch(model, dataset, n, training=True, drop_regions_of=()):
    items = [dataset[i] for i in range(n)]
    for i in drop_regions_of:  # an image without region text
        sample = items[i]['data_samples']
        sample.gt_regions = sample.gt_regions[:0]
    return model.data_preprocessor(pseudo_collate(items), training)


def test_losses_lambda_and_gradients(make_tiny_cloc_cfg):
    model, train_set, _ = build(paper_cfg(make_tiny_cloc_cfg))
    data = batch(model, train_set, 6, drop_regions_of=(1, 4))
    losses = model(**data, mode='loss')
    assert {'loss_clip', 'loss_region', 'loss_ground', 'region_lambda'} <= set(losses)
    assert losses['region_lambda'].item() == pytest.approx(4 / 6)
    # the same weights with lambda = 1: the region terms scale by exactly 4/6, CLIP's does not
    model.region_loss_weighting = 'fixed'
    fixed = model(**data, mode='loss')
    for key in ('loss_region', 'loss_ground'):
        assert losses[key].item() == pytest.approx(fixed[key].item() * 4 / 6, rel=1e-5)
    assert losses['loss_clip'].item() == pytest.approx(fixed['loss_clip'].item(), rel=1e-6)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    params = dict(model.named_parameters())
    for name in ('prompter.layer.linear1.weight', 'prompter.proj.weight', 'prompter.text_proj.weight',
                 'grounding_head.mlp.0.weight', 'clip_loss.logit_scale',
                 'image_encoder.transformer.resblocks.0.mlp.c_fc.weight'):
        assert params[name].grad is not None and params[name].grad.abs().sum() > 0, name
    assert model.region_loss.logit_scale is None  # the region loss uses CLIP's temperature


def test_grounding_loss_is_the_l2_of_the_corners(make_tiny_cloc_cfg):
    model, train_set, _ = build(paper_cfg(make_tiny_cloc_cfg, region_loss_weighting='fixed'))
    data = batch(model, train_set, 4)
    losses = model(**data, mode='loss')
    # independently: each region's phrase through the Prompter and the head, squared error
    # of the 4 corners against its normalised box, mean over coordinates and regions
    inputs, samples = data['inputs'], data['data_samples']
    h, w = inputs.shape[-2:]
    vit = model.image_encoder(inputs)
    context = model.prompter.context_from_vit(vit)
    errors = []
    for i, sample in enumerate(samples):
        phrases = list(sample.gt_regions.phrases)
        if not phrases:
            continue
        text = model.embed_phrases(phrases)
        z = model.prompter(context, model.prompter.text_tokens(text),
                           torch.full((len(phrases), ), i))
        target = sample.gt_regions.bboxes / torch.tensor([w, h, w, h])
        errors.append((model.grounding_head.mlp(z) - target) ** 2)
    expected = torch.cat(errors).mean()
    assert losses['loss_ground'].item() == pytest.approx(expected.item(), rel=1e-4)


def test_predict_embeds_regions_and_grounds(make_tiny_cloc_cfg):
    model, _, val_set = build(paper_cfg(make_tiny_cloc_cfg))
    model.eval()
    data = batch(model, val_set, 4, training=False)
    with torch.no_grad():
        samples = model(**data, mode='predict')
        inputs = data['inputs']
        h, w = inputs.shape[-2:]
        for i, sample in enumerate(samples):
            n = len(sample.gt_regions)
            boxes = sample.gt_regions.bboxes / torch.tensor([w, h, w, h])
            # the same as embed_regions on that image alone (prompts are independent)
            alone = model.embed_regions(inputs[i:i + 1], boxes[None])[0]
            torch.testing.assert_close(sample.pred_regions.embeds, alone, atol=1e-5, rtol=1e-4)
            ground = sample.pred_regions.ground_bboxes
            assert ground.shape == (n, 4)
            assert (ground >= 0).all() and (ground[:, 0::2] <= w).all() and (ground[:, 1::2] <= h).all()
            direct = model.ground(inputs[i:i + 1], [list(sample.gt_regions.phrases)])[0]
            torch.testing.assert_close(ground / torch.tensor([w, h, w, h]), direct,
                                       atol=1e-5, rtol=1e-4)
    norms = samples[0].pred_regions.embeds.norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms))


def test_the_grounding_head_owns_its_loss(make_tiny_cloc_cfg):
    cfg = paper_cfg(make_tiny_cloc_cfg)
    cfg.model.grounding_loss = dict(type='GroundingLoss')
    with pytest.raises(ValueError, match='own loss'):
        MODELS.build(cfg.model)
    cfg.model.grounding_loss = None
    cfg.model.region_loss_weighting = 'per_term'
    with pytest.raises(ValueError, match='region_loss_weighting'):
        MODELS.build(cfg.model)


def test_region_lambda_counts_images_with_regions():
    from cllip_mm.models.multimodal.cloc import CLOC
    valid = torch.tensor([[True, False], [False, False], [True, True], [False, False]])
    assert CLOC.region_lambda(valid).item() == pytest.approx(0.5)
    assert CLOC.region_lambda(valid[:0]).item() == 0.0
