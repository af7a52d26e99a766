# Copyright (c) cllip_mm contributors. All rights reserved.
"""CLIP weights in: HF / open_clip / OpenAI layouts give the embeddings of the source."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from tiny_clip import (
    EOT_ID,
    SOT_ID,
    TEXTS,
    TOKENIZER_VOCAB,
    hf_embeddings,
    load_tool,
    save_hf_clip,
    tiny_hf_clip,
)

from cllip_mm.models.converters import (
    ConversionReport,
    convert_hf_clip,
    convert_openai_clip,
    import_clip,
    reference_shapes,
)
from cllip_mm.models.tokenizers import HFTokenizer
from cllip_mm.registry import MODELS
from cllip_mm.utils import register_all_modules

TOL = 1e-4


def build_encoders(result):
    """The VisionTransformer / TextTransformer of an import, with its weights."""
    register_all_modules()
    encoders = {}
    for name in ('image_encoder', 'text_encoder'):
        module = MODELS.build(result.model_cfg[name]).eval()
        prefix = name + '.'
        module.load_state_dict({k[len(prefix):]: v for k, v in result.state_dict.items()
                                if k.startswith(prefix)})
        encoders[name] = module
    return encoders


def inputs(seed=1, image_size=32):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(3, 3, image_size, image_size, generator=g)
    # Padded with 0. Rows 2 and 3 hold an id above EOT (after / before it), where
    # argmax pooling and first-EOT pooling pick different positions.
    ids = torch.tensor([[SOT_ID, 5, 6, EOT_ID, 0, 0],
                        [SOT_ID, 7, EOT_ID, 63, 0, 0],
                        [SOT_ID, 63, 9, 10, EOT_ID, 0]])
    return images, ids


@torch.no_grad()
def ours(encoders, images, ids):
    return (F.normalize(encoders['image_encoder'](images).image_embed, dim=-1),
            F.normalize(encoders['text_encoder'](ids), dim=-1))


@pytest.mark.parametrize('act,eos_token_id', [('gelu', 2), ('quick_gelu', EOT_ID), ('gelu', EOT_ID)])
def test_hf_state_dict_parity(act, eos_token_id):
    hf = tiny_hf_clip(act, eos_token_id)
    result = import_clip(hf.state_dict(), 'hf', hf_config=hf.config.to_dict())
    assert result.model_cfg['image_encoder']['act'] == act
    assert result.model_cfg['text_encoder']['act'] == act
    # Legacy eos_token_id 2 means argmax pooling in HF; otherwise the first EOS.
    assert result.model_cfg['text_encoder']['eot_token_id'] == (None if eos_token_id == 2 else EOT_ID)
    images, ids = inputs()
    encoders = build_encoders(result)
    for a, b in zip(ours(encoders, images, ids), hf_embeddings(hf, images, ids)):
        assert (a - b).abs().max() <= TOL
    # Row 3 (an id above EOT before it) tells the two pooling rules apart.
    other = dict(result.model_cfg['text_encoder'], eot_token_id=EOT_ID if eos_token_id == 2 else None)
    text = MODELS.build(other).eval()
    text.load_state_dict(encoders['text_encoder'].state_dict())
    with torch.no_grad():
        assert (F.normalize(text(ids), dim=-1) - hf_embeddings(hf, images, ids)[1])[2].abs().max() > 1e-3


def test_hf_report_lists_new_heads_and_unexpected_keys():
    hf = tiny_hf_clip()
    state_dict = dict(hf.state_dict(), **{'vision_model.extra.weight': torch.zeros(1)})
    result = import_clip(state_dict, 'hf', hf_config=hf.config.to_dict())
    report = result.report
    assert isinstance(report, ConversionReport)
    assert 'clip_loss.logit_scale' in report.loaded
    assert torch.equal(result.state_dict['clip_loss.logit_scale'], hf.logit_scale.detach())
    assert all(k.startswith(('image_encoder.', 'text_encoder.', 'clip_loss.')) for k in report.loaded)
    assert len(report.loaded) == len(result.state_dict)
    assert any(k.startswith('prompter.') for k in report.new)
    assert any(k.startswith('grounding_head.') for k in report.new)
    assert 'region_loss.logit_scale' in report.new
    assert not any(k.startswith(('image_encoder.', 'text_encoder.')) for k in report.new)
    assert report.unused == ['vision_model.extra.weight'] and report.unexpected == []
    assert not report.mismatched and not report.resized
    assert 'prompter.* (' in report.summary()


def test_hf_qkv_is_concatenated_in_q_k_v_order():
    hf = tiny_hf_clip()
    converted, unmapped = convert_hf_clip(hf.state_dict())
    assert unmapped == []
    attn = hf.vision_model.encoder.layers[1].self_attn
    expected = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
    assert torch.equal(converted['image_encoder.transformer.resblocks.1.attn.in_proj_weight'], expected)
    assert torch.equal(converted['image_encoder.proj'], hf.visual_projection.weight.t())


def to_openai_layout(hf_state_dict, text_prefix=''):
    """The OpenAI CLIP / open_clip layout of HF weights, written from their documented
    names (independently of the library's tables)."""
    out = {'logit_scale': hf_state_dict['logit_scale']}
    for hf_tower, tower in (('vision_model', 'visual.'), ('text_model', text_prefix)):
        layer = 0
        while f'{hf_tower}.encoder.layers.{layer}.layer_norm1.weight' in hf_state_dict:
            src, dst = f'{hf_tower}.encoder.layers.{layer}.', f'{tower}transformer.resblocks.{layer}.'
            for p in ('weight', 'bias'):
                out[f'{dst}attn.in_proj_{p}'] = torch.cat(
                    [hf_state_dict[f'{src}self_attn.{x}_proj.{p}'] for x in 'qkv'])
                out[f'{dst}attn.out_proj.{p}'] = hf_state_dict[f'{src}self_attn.out_proj.{p}']
                out[f'{dst}ln_1.{p}'] = hf_state_dict[f'{src}layer_norm1.{p}']
                out[f'{dst}ln_2.{p}'] = hf_state_dict[f'{src}layer_norm2.{p}']
                out[f'{dst}mlp.c_fc.{p}'] = hf_state_dict[f'{src}mlp.fc1.{p}']
                out[f'{dst}mlp.c_proj.{p}'] = hf_state_dict[f'{src}mlp.fc2.{p}']
            layer += 1
    v, t = 'vision_model.', 'text_model.'
    out['visual.conv1.weight'] = hf_state_dict[v + 'embeddings.patch_embedding.weight']
    out['visual.class_embedding'] = hf_state_dict[v + 'embeddings.class_embedding']
    out['visual.positional_embedding'] = hf_state_dict[v + 'embeddings.position_embedding.weight']
    out['visual.proj'] = hf_state_dict['visual_projection.weight'].t()
    out[text_prefix + 'token_embedding.weight'] = hf_state_dict[t + 'embeddings.token_embedding.weight']
    out[text_prefix + 'positional_embedding'] = hf_state_dict[t + 'embeddings.position_embedding.weight']
    out[text_prefix + 'text_projection'] = hf_state_dict['text_projection.weight'].t()
    for p in ('weight', 'bias'):
        out[f'visual.ln_pre.{p}'] = hf_state_dict[f'{v}pre_layrnorm.{p}']
        out[f'visual.ln_post.{p}'] = hf_state_dict[f'{v}post_layernorm.{p}']
        out[f'{text_prefix}ln_final.{p}'] = hf_state_dict[f'{t}final_layer_norm.{p}']
    return out


def save_torchscript(state_dict, path):
    """An archive like OpenAI's ``ViT-B-16.pt`` (TorchScript, int metadata included)."""
    class Holder(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    root = Holder()
    for key, value in state_dict.items():
        *path_, name = key.split('.')
        module = root
        for part in path_:
            if not hasattr(module, part):
                module.add_module(part, Holder())
            module = getattr(module, part)
        module.register_buffer(name, value.clone())
    torch.jit.script(root).save(str(path))


@pytest.mark.parametrize('src_format,act,layout', [
    ('open_clip', 'gelu', 'state_dict'),           # open_clip default activation
    ('open_clip', 'gelu', 'custom_text'),          # CustomTextCLIP: text.* prefix
    ('open_clip', 'gelu', 'train_checkpoint'),     # {'state_dict': {'module.*'}}
    ('openai', 'quick_gelu', 'state_dict'),
    ('openai', 'quick_gelu', 'torchscript'),
])
def test_open_clip_and_openai_parity_through_the_tool(tmp_path, src_format, act, layout):
    hf = tiny_hf_clip(act, eos_token_id=2)  # OpenAI's rule: pool at the argmax id
    state_dict = to_openai_layout(hf.state_dict(), 'text.' if layout == 'custom_text' else '')
    path = tmp_path / 'clip.pt'
    if layout == 'torchscript':
        state_dict.update(input_resolution=torch.tensor(32), context_length=torch.tensor(32),
                          vocab_size=torch.tensor(64))
        save_torchscript(state_dict, path)
    elif layout == 'train_checkpoint':
        torch.save({'epoch': 3, 'state_dict': {'module.' + k: v for k, v in state_dict.items()}}, path)
    else:
        torch.save(state_dict, path)
    out = tmp_path / 'cllip.pth'
    tool = load_tool('clip_to_cllip')
    assert tool.main([str(path), str(out), '--src-format', src_format, '--vision-heads', '4',
                      '--text-heads', '4']) == 0
    checkpoint = torch.load(out, map_location='cpu', weights_only=True)
    meta = checkpoint['meta']
    assert meta['src_format'] == src_format
    assert meta['conversion_report']['unused'] == []
    model_cfg = meta['model_cfg']
    assert model_cfg['text_encoder']['eot_token_id'] is None
    assert model_cfg['image_encoder']['act'] == act
    assert model_cfg['image_encoder']['img_size'] == 32 and model_cfg['text_encoder']['context_length'] == 32

    class Result:
        pass
    result = Result()
    result.model_cfg, result.state_dict = model_cfg, checkpoint['state_dict']
    images, ids = inputs()
    for a, b in zip(ours(build_encoders(result), images, ids), hf_embeddings(hf, images, ids)):
        assert (a - b).abs().max() <= TOL


def test_openai_layout_errors():
    with pytest.raises(ValueError, match='ResNet'):
        convert_openai_clip({'visual.layer1.0.conv1.weight': torch.zeros(1)})
    _, unmapped = convert_openai_clip({'visual.attn_pool.x': torch.zeros(1), 'visual.conv1.weight': torch.zeros(1)})
    assert unmapped == ['visual.attn_pool.x']  # open_clip's attentional pooler: no counterpart
    with pytest.raises(ValueError, match="needs the model's config.json"):
        import_clip({}, 'hf')
    with pytest.raises(ValueError, match='src_format'):
        import_clip({}, 'timm')


def test_pos_embed_resize_for_another_img_size(tmp_path):
    hf = tiny_hf_clip()
    result = import_clip(hf.state_dict(), 'hf', hf_config=hf.config.to_dict(), img_size=48)
    key = 'image_encoder.positional_embedding'
    assert result.state_dict[key].shape == (1 + 6 * 6, 32)
    assert result.report.resized == {key: ((1 + 4 * 4, 32), (1 + 6 * 6, 32))}
    assert key in result.report.loaded
    assert result.model_cfg['image_encoder']['img_size'] == 48
    # The class token's embedding is kept; the grid is interpolated.
    assert torch.equal(result.state_dict[key][0], hf.vision_model.embeddings.position_embedding.weight[0])
    encoders = build_encoders(result)  # loads strictly at 48 px
    assert encoders['image_encoder'](torch.randn(1, 3, 48, 48)).patch_tokens.shape == (1, 32, 6, 6)
    # Non-square sizes, and sizes that are not multiples of the patch.
    rect = import_clip(hf.state_dict(), 'hf', hf_config=hf.config.to_dict(), img_size=(32, 64))
    assert rect.state_dict[key].shape == (1 + 4 * 8, 32)
    with pytest.raises(ValueError, match='multiple of the patch size'):
        import_clip(hf.state_dict(), 'hf', hf_config=hf.config.to_dict(), img_size=36)
    # Through the tool: the checkpoint holds the resized embedding.
    src = save_hf_clip(hf, tmp_path / 'hf')
    out = tmp_path / 'resized.pth'
    load_tool('clip_to_cllip').main([src, str(out), '--src-format', 'hf', '--img-size', '64'])
    checkpoint = torch.load(out, map_location='cpu', weights_only=True)
    assert checkpoint['state_dict'][key].shape == (1 + 8 * 8, 32)
    assert checkpoint['meta']['model_cfg']['image_encoder']['img_size'] == 64


def test_mismatched_config_is_an_error(tmp_path):
    hf = tiny_hf_clip()
    src = save_hf_clip(hf, tmp_path / 'hf')
    config = tmp_path / 'wrong.py'
    config.write_text(
        "model = dict(type='CLOC',\n"
        "    image_encoder=dict(type='VisionTransformer', img_size=32, patch_size=8, width=64,\n"
        "                       layers=2, heads=4, embed_dim=16),\n"
        "    text_encoder=dict(type='TextTransformer', context_length=32, width=32, layers=2,\n"
        "                      heads=4, embed_dim=16, mlp_ratio=2.0),\n"
        "    clip_loss=dict(type='ClipContrastiveLoss'))\n")
    with pytest.raises(SystemExit, match='MISMATCHED'):
        load_tool('clip_to_cllip').main([src, str(tmp_path / 'o.pth'), '--src-format', 'hf',
                                         '--config', str(config)])
    result = import_clip(hf.state_dict(), 'hf', hf_config=hf.config.to_dict(),
                         target_cfg=Config.fromfile(str(config)).model.to_dict())
    assert result.report.mismatched['image_encoder.conv1.weight'] == ((32, 3, 8, 8), (64, 3, 8, 8))
    assert 'image_encoder.conv1.weight' not in result.state_dict
    # Without heads in its config, the text encoder's keys all load (vocab from the source).
    assert 'text_encoder.token_embedding.weight' in result.report.loaded
    assert not any(k.startswith('prompter.') for k in result.report.new)


def test_clip_tokenizer_directory_loads_in_hftokenizer(clip_tokenizer_dir):
    from transformers import AutoTokenizer
    tokenizer = HFTokenizer(clip_tokenizer_dir, context_length=8)
    assert (tokenizer.sot_token_id, tokenizer.eot_token_id) == (SOT_ID, EOT_ID)
    assert tokenizer.vocab_size == TOKENIZER_VOCAB
    ids = tokenizer(['a cat', 'the dog'])
    hf_ids = AutoTokenizer.from_pretrained(clip_tokenizer_dir)(
        ['a cat', 'the dog'], padding='max_length', max_length=8, return_tensors='pt').input_ids
    assert torch.equal(ids, hf_ids)
    assert ids[0, :4].tolist() == [SOT_ID, 26, 53, EOT_ID]  # 'a</w>' = 26, 'cat</w>' merged


def test_hf_directory_to_cloc_with_init_cfg(tmp_path, clip_tokenizer_dir):
    """HF dir (+ tokenizer) -> tool -> config snippet -> CLOC.init_weights() -> the HF
    embeddings through CLOC's public API, tokenizer included."""
    from transformers import AutoTokenizer
    hf = tiny_hf_clip('quick_gelu', EOT_ID)
    src = save_hf_clip(hf, tmp_path / 'hf', clip_tokenizer_dir)
    out, snippet = tmp_path / 'clip.pth', tmp_path / 'clip_model.py'
    load_tool('clip_to_cllip').main([src, str(out), '--src-format', 'hf', '--cfg-out', str(snippet)])
    assert osp.isfile(tmp_path / 'clip_tokenizer' / 'tokenizer_config.json')

    config = tmp_path / 'cloc_from_clip.py'
    config.write_text(f"_base_ = ['{snippet.name}']\n"
                      "model = dict(type='CLOC', clip_loss=dict(type='ClipContrastiveLoss'),\n"
                      "             region_loss=dict(type='RegionTextContrastiveLoss'),\n"
                      "             grounding_loss=dict(type='GroundingLoss'))\n")
    cfg = Config.fromfile(str(config))
    assert cfg.model.init_cfg == dict(type='Pretrained', checkpoint=str(out))
    assert cfg.model.tokenizer.path == str(tmp_path / 'clip_tokenizer')
    register_all_modules()
    model = MODELS.build(cfg.model)
    prompter_before = model.prompter.proj.weight.clone()
    model.init_weights()
    model.eval()
    assert torch.equal(model.prompter.proj.weight, prompter_before)  # fresh, untouched
    images = torch.randn(2, 3, 32, 32)
    hf_ids = AutoTokenizer.from_pretrained(src)(TEXTS, padding='max_length', max_length=32,
                                                return_tensors='pt').input_ids
    hf_image, hf_text = hf_embeddings(hf, images, hf_ids)
    with torch.no_grad():
        assert (model.embed_images(images) - hf_image).abs().max() <= TOL
        assert (model.embed_texts(TEXTS) - hf_text).abs().max() <= TOL
    assert torch.equal(model.clip_loss.logit_scale.detach(), hf.logit_scale.detach())


def test_reference_shapes_match_a_built_cloc(clip_tokenizer_dir):
    """reference_shapes mirrors CLOC's weights (catches a new CLOC sub-module)."""
    hf = tiny_hf_clip()
    result = import_clip(hf.state_dict(), 'hf', hf_config=hf.config.to_dict())
    cfg = dict(result.model_cfg, type='CLOC', tokenizer=dict(type='HFTokenizer', path=clip_tokenizer_dir),
               clip_loss=dict(type='ClipContrastiveLoss'),
               region_loss=dict(type='RegionTextContrastiveLoss'),
               grounding_loss=dict(type='GroundingLoss'))
    register_all_modules()
    model = MODELS.build(cfg)
    assert reference_shapes(cfg) == {k: v.shape for k, v in model.state_dict().items()}


def test_hf_vision_tower_only():
    """A CLIPVisionModelWithProjection (a vision tower as LLaVA-style code ships it)."""
    from transformers import CLIPVisionModelWithProjection
    hf = tiny_hf_clip('quick_gelu')
    vision_config = hf.config.vision_config
    vision_config.projection_dim = 16
    tower = CLIPVisionModelWithProjection(vision_config).eval()
    tower.load_state_dict({k: v for k, v in hf.state_dict().items()
                           if k.startswith(('vision_model.', 'visual_projection.'))})
    result = import_clip(tower.state_dict(), 'hf', hf_config=vision_config.to_dict())
    assert set(result.model_cfg) == {'image_encoder', 'prompter', 'grounding_head'}
    assert not result.report.unused and not result.report.mismatched
    assert not any(k.startswith('image_encoder.') for k in result.report.new)
    register_all_modules()
    vit = MODELS.build(result.model_cfg['image_encoder']).eval()
    vit.load_state_dict({k[len('image_encoder.'):]: v for k, v in result.state_dict.items()
                         if k.startswith('image_encoder.')})
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (vit(images).image_embed - tower(pixel_values=images).image_embeds).abs().max() <= TOL
        assert (F.normalize(vit(images).image_embed, dim=-1)
                - hf_embeddings(hf, images, torch.tensor([[SOT_ID, EOT_ID]]))[0]).abs().max() <= TOL
