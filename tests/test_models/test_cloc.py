"""The CLOC model end to end on real files: losses, predictions, inference API."""
import torch
from mmengine.dataset import pseudo_collate

from cllip_mm.registry import DATASETS, MODELS
from cllip_mm.utils import register_all_modules

register_all_modules()


def build(cfg):
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    train_set = DATASETS.build(cfg.train_dataloader.dataset)
    val_set = DATASETS.build(cfg.val_dataloader.dataset)
    return model, train_set, val_set


def test_loss_names_and_backward(make_tiny_cloc_cfg):
    model, train_set, _ = build(make_tiny_cloc_cfg())
    data = model.data_preprocessor(pseudo_collate([train_set[i] for i in range(8)]), True)
    losses = model(**data, mode='loss')
    assert {'loss_clip', 'loss_region', 'loss_ground', 'phrase_cos'} <= set(losses)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    for name in ('image_encoder.conv1.weight', 'text_encoder.token_embedding.weight',
                 'prompter.proj.weight', 'grounding_head.text_proj.weight',
                 'clip_loss.logit_scale', 'region_loss.logit_scale'):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_token_grounding_head_losses_and_predict(make_tiny_cloc_cfg):
    """box_mode='token' with refine and rescoring: its loss terms train its own parts, and
    predict gives one box per phrase."""
    cfg = make_tiny_cloc_cfg()
    assert cfg.model.grounding_head.box_mode == 'token'  # the demo's grounding head
    cfg.model.grounding_head.update(refine=True, rescore_topk=3)
    model, train_set, val_set = build(cfg)
    model.grounding_head.init_weights()
    data = model.data_preprocessor(pseudo_collate([train_set[i] for i in range(8)]), True)
    losses = model(**data, mode='loss')
    assert {'loss_ground', 'loss_ground_token', 'loss_ground_refine'} <= set(losses)
    params = dict(model.named_parameters())
    losses['loss_ground_refine'].backward(retain_graph=True)
    assert params['grounding_head.refine_head.layers.2.weight'].grad.abs().sum() > 0
    assert params['grounding_head.box_head.layers.0.weight'].grad is None  # boxes detached
    losses['loss_ground_token'].backward()
    assert params['grounding_head.query_proj.weight'].grad.abs().sum() > 0
    model.eval()
    data = model.data_preprocessor(pseudo_collate([val_set[i] for i in range(4)]), False)
    with torch.no_grad():
        samples = model(**data, mode='predict')
    for sample in samples:
        assert sample.pred_regions.ground_bboxes.shape == (len(sample.gt_regions), 4)


def test_clip_baseline_has_only_the_clip_loss(make_tiny_cloc_cfg):
    model, train_set, val_set = build(make_tiny_cloc_cfg(clip_only=True))
    data = model.data_preprocessor(pseudo_collate([train_set[i] for i in range(8)]), True)
    assert set(model(**data, mode='loss')) == {'loss_clip'}
    assert model.region_embed_mode == 'crop'
    data = model.data_preprocessor(pseudo_collate([val_set[i] for i in range(4)]), False)
    samples = model(**data, mode='predict')
    assert samples[0].pred_regions.scores.shape[1] == len(val_set.metainfo['classes'])
    assert 'ground_bboxes' not in samples[0].pred_regions


def test_predict_fills_what_the_metrics_read(make_tiny_cloc_cfg):
    model, _, val_set = build(make_tiny_cloc_cfg())
    model.eval()
    data = model.data_preprocessor(pseudo_collate([val_set[i] for i in range(4)]), False)
    with torch.no_grad():
        samples = model(**data, mode='predict')
    vocab = val_set.metainfo['classes']
    for sample in samples:
        n = len(sample.gt_regions)
        assert sample.image_embed.shape == (16, ) and sample.text_embed.shape == (16, )
        torch.testing.assert_close(sample.image_embed.norm(), torch.tensor(1.0))
        assert sample.pred_regions.embeds.shape == (n, 16)
        assert sample.pred_regions.scores.shape == (n, len(vocab))
        boxes = sample.pred_regions.ground_bboxes
        h, w = sample.img_shape
        assert boxes.shape == (n, 4)
        assert bool((boxes[:, 2:] >= boxes[:, :2]).all()) and boxes.max() <= max(h, w)


def test_inference_api_matches_predict(make_tiny_cloc_cfg):
    model, _, val_set = build(make_tiny_cloc_cfg())
    model.eval()
    data = model.data_preprocessor(pseudo_collate([val_set[i] for i in range(2)]), False)
    images, samples = data['inputs'], data['data_samples']
    with torch.no_grad():
        predicted = model(images, [s.clone() for s in samples], mode='predict')
        h, w = images.shape[-2:]
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        boxes = samples[0].gt_regions.bboxes[None] / scale
        regions = model.embed_regions(images[:1], boxes)
        torch.testing.assert_close(regions[0], predicted[0].pred_regions.embeds, atol=1e-5, rtol=1e-5)
        # A region's embedding does not depend on the other boxes it is asked with.
        alone = model.embed_regions(images[:1], boxes[:, :1])
        torch.testing.assert_close(alone[0, 0], regions[0, 0], atol=1e-5, rtol=1e-5)
        grounded = model.ground(images[:1], [samples[0].gt_regions.phrases])
        torch.testing.assert_close(grounded[0] * scale, predicted[0].pred_regions.ground_bboxes,
                                   atol=1e-4, rtol=1e-4)
        texts = model.embed_texts([samples[0].caption])
        torch.testing.assert_close(texts[0], predicted[0].text_embed, atol=1e-5, rtol=1e-5)
        crops = model.embed_regions(images[:1], torch.tensor([[[0.0, 0.0, 1.0, 1.0]]]), mode='crop')
        # Cropping the whole image is the image itself (up to bilinear resampling).
        assert torch.nn.functional.cosine_similarity(
            crops[0, 0], model.embed_images(images[:1])[0], dim=0) > 0.99


def _image_layouts(images):
    """The same images [B, 3, H, W] as a caller may hand them over."""
    return {
        'contiguous': images.contiguous(),
        'channels_last': images.contiguous(memory_format=torch.channels_last),
        # e.g. torch.from_numpy(hwc_batch).permute(0, 3, 1, 2)
        'permuted_hwc': images.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2),
    }


def test_encoder_maps_are_contiguous(make_tiny_cloc_cfg):
    model, _, _ = build(make_tiny_cloc_cfg())
    images = torch.randn(2, 3, 32, 32)
    for name, x in _image_layouts(images).items():
        vit = model.image_encoder(x)
        assert vit.patch_tokens.is_contiguous() and vit.patch_embeds.is_contiguous(), name


def test_embed_regions_is_layout_independent_in_both_modes(make_tiny_cloc_cfg):
    model, _, val_set = build(make_tiny_cloc_cfg())
    model.eval()
    data = model.data_preprocessor(pseudo_collate([val_set[i] for i in range(2)]), False)
    images = data['inputs']
    boxes = torch.tensor([[[0.1, 0.1, 0.6, 0.5], [0.4, 0.3, 1.0, 0.9]],
                          [[0.0, 0.5, 0.5, 1.0], [0.2, 0.0, 0.9, 0.4]]])
    with torch.no_grad():
        # the reference: contiguous images; and a region's embedding is its image's alone
        expected = {mode: model.embed_regions(images.contiguous(), boxes, mode=mode)
                    for mode in ('prompter', 'crop')}
        for mode in ('prompter', 'crop'):
            alone = model.embed_regions(images[1:].clone(), boxes[1:, 1:], mode=mode)
            torch.testing.assert_close(alone[0, 0], expected[mode][1, 1], atol=1e-5, rtol=1e-5)
            for name, x in _image_layouts(images).items():
                torch.testing.assert_close(model.embed_regions(x, boxes, mode=mode), expected[mode],
                                           atol=1e-5, rtol=1e-5, msg=f'{mode}, {name}')


def test_crop_mode_crops_the_box(make_tiny_cloc_cfg, monkeypatch):
    """The crops that crop-and-encode embeds are the boxes' pixels, resized bilinearly
    (``F.interpolate`` of a slice; the outer ring of output pixels differs, since RoIAlign
    reads the pixels just outside the box where the slice clamps), in any memory layout."""
    model, _, _ = build(make_tiny_cloc_cfg(clip_only=True))
    g = torch.Generator().manual_seed(0)
    images = torch.randn(1, 3, 32, 32, generator=g)
    expected = torch.nn.functional.interpolate(images[:, :, 8:24, 0:16], size=(32, 32),
                                               mode='bilinear', align_corners=False)
    boxes = torch.tensor([[[0 / 32, 8 / 32, 16 / 32, 24 / 32]]])
    seen = []
    monkeypatch.setattr(model, 'embed_images', lambda crops: seen.append(crops) or torch.zeros(len(crops), 16))
    for x in _image_layouts(images).values():
        model.embed_regions(x, boxes, mode='crop')
        torch.testing.assert_close(seen[-1][..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1],
                                   atol=1e-5, rtol=1e-5)
