# Copyright (c) cllip_mm contributors. All rights reserved.
"""Weights out: a cllip_mm checkpoint -> a Hugging Face CLIPModel directory + Prompter."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_clip import EOT_ID, TEXTS, hf_embeddings, load_tool, tiny_hf_clip

from cllip_mm.models.converters import format_config, hf_patch_tokens, import_clip, load_prompter
from cllip_mm.models.tokenizers import HFTokenizer, build_word_level_tokenizer
from cllip_mm.registry import MODELS
from cllip_mm.utils import register_all_modules

TOL = 1e-4
CLIP_MEAN = [122.7709383, 116.7460125, 104.09373615]
CLIP_STD = [68.5005327, 66.6321579, 70.32316305]


# The CPU demo's Prompter reads the stem's patch embeddings too (docs/region_effect.md).
STEM_PROMPTER = dict(roi_sources=('patch_embed', ), context_sources=('final', 'patch_embed'),
                     context_pos_encoding=True)


def cloc_cfg(tokenizer_path, patch_token_norm='none', prompter_extra=None, **text):
    return dict(
        type='CLOC',
        data_preprocessor=dict(type='ImgDataPreprocessor', mean=CLIP_MEAN, std=CLIP_STD,
                               bgr_to_rgb=True),
        image_encoder=dict(type='VisionTransformer', img_size=32, patch_size=8, width=32, layers=2,
                           heads=4, embed_dim=16, act='quick_gelu', patch_token_norm=patch_token_norm),
        text_encoder=dict(type='TextTransformer', context_length=32, width=32, layers=2, heads=4,
                          embed_dim=16, mlp_ratio=2.0, **text),
        tokenizer=dict(type='HFTokenizer', path=tokenizer_path, context_length=32),
        clip_loss=dict(type='ClipContrastiveLoss'),
        prompter=dict(type='Prompter', width=32, embed_dim=16, heads=4, num_layers=1,
                      roi_output_size=2, **(prompter_extra or {})),
        grounding_head=dict(type='GroundingHead', embed_dim=16, width=32),
        region_loss=dict(type='RegionTextContrastiveLoss', init_logit_scale=2.5),
        grounding_loss=dict(type='GroundingLoss'))


def build_random_cloc(cfg, seed=0):
    """A CLOC whose every weight is random (LayerNorms and biases too)."""
    register_all_modules()
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() <= 1 and 'logit_scale' not in name:
                param.add_(0.2 * torch.randn_like(param))
    return model.eval()


def export(tmp_path, model, cfg, *extra):
    """Save checkpoint + config as training would, run the export tool."""
    checkpoint, config, out = tmp_path / 'iter_10.pth', tmp_path / 'cfg.py', tmp_path / 'hf'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    config.write_text(format_config(dict(model=cfg)))
    assert load_tool('cllip_to_hf').main([str(config), str(checkpoint), str(out), *extra]) == 0
    return str(out)


@pytest.mark.parametrize('patch_token_norm,prompter_extra',
                         [('none', None), ('ln_post', None), ('none', STEM_PROMPTER)],
                         ids=['none', 'ln_post', 'stem_prompter'])
def test_export_parity_and_prompter(tmp_path, clip_tokenizer_dir, patch_token_norm, prompter_extra):
    from transformers import AutoTokenizer, CLIPModel, CLIPVisionModel
    cfg = cloc_cfg(clip_tokenizer_dir, patch_token_norm, prompter_extra)
    model = build_random_cloc(cfg)
    out = export(tmp_path, model, cfg)
    for name in ('config.json', 'model.safetensors', 'prompter.safetensors',
                 'prompter_config.json', 'tokenizer_config.json', 'preprocessor_config.json'):
        assert osp.isfile(osp.join(out, name)), name
    with open(osp.join(out, 'config.json')) as f:
        config = json.load(f)
    assert config['text_config']['eos_token_id'] == EOT_ID  # CLOC took it from the tokenizer
    assert config['vision_config']['hidden_act'] == 'quick_gelu'
    assert config['text_config']['hidden_act'] == 'gelu'

    hf = CLIPModel.from_pretrained(out).eval()
    images = torch.randn(2, 3, 32, 32)
    ids = AutoTokenizer.from_pretrained(out)(TEXTS, padding='max_length', max_length=32,
                                             return_tensors='pt').input_ids
    hf_image, hf_text = hf_embeddings(hf, images, ids)
    with torch.no_grad():
        assert (model.embed_images(images) - hf_image).abs().max() <= TOL
        assert (model.embed_texts(TEXTS) - hf_text).abs().max() <= TOL
    assert hf.logit_scale.item() == pytest.approx(model.clip_loss.logit_scale.item())

    # The vision tower alone (what LLaVA-style code loads), and the Prompter on its tokens.
    vision = CLIPVisionModel.from_pretrained(out).eval()
    bundle = load_prompter(out)
    assert bundle.config['vision']['patch_token_norm'] == patch_token_norm
    assert bundle.config['region_logit_scale'] == pytest.approx(2.5)
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.25, 0.1, 0.9, 0.8]]] * 2)
    with torch.no_grad():
        vit = model.image_encoder(images)
        hf_out = vision(pixel_values=images)
        assert (hf_out.pooler_output - vit.cls_token).abs().max() <= TOL
        # transformers 5 keeps the layers on CLIPVisionModel, 4 under .vision_model.
        tower = getattr(vision, 'vision_model', vision)
        norm = tower.post_layernorm if patch_token_norm == 'ln_post' else None
        tokens = hf_patch_tokens(hf_out.last_hidden_state, (4, 4), norm)
        assert (tokens - vit.patch_tokens).abs().max() <= TOL
        # HF's bias-free patch convolution is the stem (conv1).
        stem = tower.embeddings.patch_embedding(images)
        assert (stem - vit.patch_embeds).abs().max() <= TOL
        regions = F.normalize(bundle.prompter(tokens, boxes, stem), dim=-1)
        assert (regions - model.embed_regions(images, boxes)).abs().max() <= TOL
        phrases = model.embed_phrases(['a cat', 'dog'])[None].expand(2, -1, -1)
        assert (bundle.grounding_head(phrases, tokens, bundle.prompter, stem)
                - model.grounding_head(phrases, vit.patch_tokens, model.prompter,
                                       vit.patch_embeds)).abs().max() <= TOL


def test_exported_image_processor_normalises_like_the_model(tmp_path, clip_tokenizer_dir):
    from transformers import AutoImageProcessor

    from cllip_mm.models.converters import export_image_processor
    model = build_random_cloc(cloc_cfg(clip_tokenizer_dir))
    stats = export_image_processor(model, str(tmp_path))
    assert stats['image_mean'] == pytest.approx([m / 255 for m in CLIP_MEAN])
    processor = AutoImageProcessor.from_pretrained(str(tmp_path))
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    theirs = processor(rgb, return_tensors='pt').pixel_values
    bgr = torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1])).permute(2, 0, 1)
    ours = model.data_preprocessor(dict(inputs=[bgr]))['inputs']  # pipelines carry BGR
    assert theirs.shape == ours.shape == (1, 3, 32, 32)
    assert (theirs - ours).abs().max() <= 1e-4
    # Other sizes: short side to 32, center crop 32 x 32.
    assert processor(rgb.repeat(2, axis=1), return_tensors='pt').pixel_values.shape == (1, 3, 32, 32)


def test_hf_round_trip(tmp_path, clip_tokenizer_dir):
    """HF -> cllip_mm -> HF gives the embeddings of the original HF model."""
    from transformers import CLIPModel
    source = tiny_hf_clip('gelu', eos_token_id=2)
    result = import_clip(source.state_dict(), 'hf', hf_config=source.config.to_dict())
    cfg = dict(result.model_cfg, type='CLOC', clip_loss=dict(type='ClipContrastiveLoss'),
               tokenizer=dict(type='HFTokenizer', path=clip_tokenizer_dir, context_length=32))
    model = build_random_cloc(cfg)
    model.load_state_dict(result.state_dict, strict=False)
    out = export(tmp_path, model, cfg, '--no-prompter')
    assert not osp.exists(osp.join(out, 'prompter.safetensors'))
    exported = CLIPModel.from_pretrained(out).eval()
    assert exported.config.text_config.eos_token_id == 2  # argmax pooling, kept
    images = torch.randn(2, 3, 32, 32)
    ids = torch.tensor([[61, 5, 63, 6, EOT_ID, 0], [61, 7, EOT_ID, 63, 0, 0]])
    for a, b in zip(hf_embeddings(exported, images, ids), hf_embeddings(source, images, ids)):
        assert (a - b).abs().max() <= TOL
    for key, value in source.state_dict().items():
        torch.testing.assert_close(exported.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_export_moves_eot_id_2(tmp_path):
    """The demo tokenizer's EOT id is 2, which HF CLIP reads as 'argmax': the export gives
    EOT a new id in the embedding and in the tokenizer, and the HF model matches."""
    from transformers import AutoTokenizer, CLIPModel
    tokenizer_dir = str(tmp_path / 'demo_tokenizer')
    build_word_level_tokenizer(TEXTS + ['a red circle'], tokenizer_dir)
    cfg = cloc_cfg(tokenizer_dir)
    model = build_random_cloc(cfg)
    assert model.text_encoder.eot_token_id == 2
    vocab = model.text_encoder.vocab_size
    out = export(tmp_path, model, cfg)
    hf = CLIPModel.from_pretrained(out).eval()
    assert hf.config.text_config.eos_token_id == vocab
    assert hf.config.text_config.vocab_size == vocab + 1
    hf_tokenizer = AutoTokenizer.from_pretrained(out)
    assert hf_tokenizer.eos_token_id == vocab
    ids = hf_tokenizer(TEXTS, padding='max_length', max_length=32, return_tensors='pt').input_ids
    ours = HFTokenizer(tokenizer_dir, context_length=32)(TEXTS)
    assert torch.equal(ids, torch.where(ours == 2, vocab, ours))
    assert torch.equal(HFTokenizer(out, context_length=32)(TEXTS), ids)
    with torch.no_grad():
        assert (model.embed_texts(TEXTS) - hf_embeddings(hf, torch.zeros(1, 3, 32, 32), ids)[1]).abs().max() <= TOL


def test_export_needs_a_tokenizer_to_move_eot(tmp_path):
    from cllip_mm.models.converters import export_cloc_to_hf
    tokenizer_dir = str(tmp_path / 'demo_tokenizer')
    build_word_level_tokenizer(TEXTS, tokenizer_dir)
    model = build_random_cloc(cloc_cfg(tokenizer_dir))
    with pytest.raises(ValueError, match='argmax'):
        export_cloc_to_hf(model, str(tmp_path / 'out'), tokenizer_path=None)
