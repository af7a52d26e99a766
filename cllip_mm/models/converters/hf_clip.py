# Copyright (c) cllip_mm contributors. All rights reserved.
"""Hugging Face ``CLIPModel`` <-> cllip_mm ``CLOC`` state dicts and configs.

Key correspondence (``{v}`` = ``vision_model``, ``{t}`` = ``text_model``, block ``i``;
cllip_mm keys as in ``CLOC.state_dict()`` on the left):

- ``image_encoder.conv1.weight`` = ``{v}.embeddings.patch_embedding.weight`` (no bias)
- ``image_encoder.class_embedding`` [C] = ``{v}.embeddings.class_embedding``
- ``image_encoder.positional_embedding`` [1+N, C] = ``{v}.embeddings.position_embedding.weight``
- ``image_encoder.ln_pre`` / ``ln_post`` = ``{v}.pre_layrnorm`` / ``{v}.post_layernorm``
- ``image_encoder.proj`` [C, D] = ``visual_projection.weight`` [D, C] transposed
- ``text_encoder.token_embedding.weight`` = ``{t}.embeddings.token_embedding.weight``
- ``text_encoder.positional_embedding`` [L, W] = ``{t}.embeddings.position_embedding.weight``
- ``text_encoder.ln_final`` = ``{t}.final_layer_norm``
- ``text_encoder.text_projection`` [W, D] = ``text_projection.weight`` [D, W] transposed
- ``clip_loss.logit_scale`` = ``logit_scale``
- in block i, ``*.transformer.resblocks.i.`` = ``*.encoder.layers.i.`` and
  ``attn.in_proj_{weight,bias}`` = ``self_attn.{q,k,v}_proj`` concatenated (q, k, v),
  ``attn.out_proj`` = ``self_attn.out_proj``, ``ln_1`` / ``ln_2`` = ``layer_norm1`` /
  ``layer_norm2``, ``mlp.c_fc`` / ``mlp.c_proj`` = ``mlp.fc1`` / ``mlp.fc2``.

Text pooling: HF pools at the first ``eos_token_id`` of the text config, except for the
legacy value ``eos_token_id == 2``, which means "argmax of the ids" (OpenAI's rule). The
cllip_mm equivalent is ``TextTransformer(eot_token_id=None)`` for the legacy value and
``eot_token_id=eos_token_id`` otherwise.
"""
import re
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from .arch import mlp_ratio_for

HF_LEGACY_EOS_TOKEN_ID = 2
_HF_ACTS = {'gelu': 'gelu', 'quick_gelu': 'quick_gelu'}
_LAYER_NORM_EPS = 1e-5  # torch's nn.LayerNorm default, used by every cllip_mm encoder

_TOWERS = {'image_encoder': 'vision_model', 'text_encoder': 'text_model'}
# Parameters outside the blocks: cllip_mm key -> HF key.
_PLAIN = {
    'image_encoder.conv1.weight': 'vision_model.embeddings.patch_embedding.weight',
    'image_encoder.class_embedding': 'vision_model.embeddings.class_embedding',
    'image_encoder.positional_embedding': 'vision_model.embeddings.position_embedding.weight',
    'text_encoder.token_embedding.weight': 'text_model.embeddings.token_embedding.weight',
    'text_encoder.positional_embedding': 'text_model.embeddings.position_embedding.weight',
    'clip_loss.logit_scale': 'logit_scale',
}
for _ours, _hf in (('image_encoder.ln_pre', 'vision_model.pre_layrnorm'),
                   ('image_encoder.ln_post', 'vision_model.post_layernorm'),
                   ('text_encoder.ln_final', 'text_model.final_layer_norm')):
    for _p in ('weight', 'bias'):
        _PLAIN[f'{_ours}.{_p}'] = f'{_hf}.{_p}'
# Projections are stored [in, out] here and as nn.Linear weights [out, in] in HF.
_TRANSPOSED = {
    'image_encoder.proj': 'visual_projection.weight',
    'text_encoder.text_projection': 'text_projection.weight',
}
# Inside block i: cllip_mm module path -> HF module path.
_BLOCK = {'ln_1': 'layer_norm1', 'ln_2': 'layer_norm2', 'attn.out_proj': 'self_attn.out_proj',
          'mlp.c_fc': 'mlp.fc1', 'mlp.c_proj': 'mlp.fc2'}
_BLOCK_INV = {v: k for k, v in _BLOCK.items()}

_HF_BLOCK_RE = re.compile(r'^(vision_model|text_model)\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$')
_OURS_BLOCK_RE = re.compile(r'^(image_encoder|text_encoder)\.transformer\.resblocks\.(\d+)\.(.+)$')
_QKV = ('q_proj', 'k_proj', 'v_proj')
# Buffers HF checkpoints may hold that are not weights.
_HF_IGNORED = re.compile(r'(^|\.)position_ids$')


def convert_hf_clip(state_dict: Mapping[str, torch.Tensor]
                    ) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """A Hugging Face ``CLIPModel`` (or ``CLIPVisionModel[WithProjection]`` /
    ``CLIPTextModel[WithProjection]``) state dict -> ``CLOC`` keys.

    Returns:
        tuple: (converted state dict, HF keys that have no cllip_mm counterpart).
        ``position_ids`` buffers are dropped silently.
    """
    plain_inv = {v: k for k, v in _PLAIN.items()}
    transposed_inv = {v: k for k, v in _TRANSPOSED.items()}
    tower_inv = {v: k for k, v in _TOWERS.items()}
    out: Dict[str, torch.Tensor] = {}
    qkv: Dict[str, Dict[str, torch.Tensor]] = {}
    unmapped: List[str] = []
    for key, value in state_dict.items():
        if _HF_IGNORED.search(key):
            continue
        if key in plain_inv:
            out[plain_inv[key]] = value
            continue
        if key in transposed_inv:
            out[transposed_inv[key]] = value.t().contiguous()
            continue
        match = _HF_BLOCK_RE.match(key)
        if match is None:
            unmapped.append(key)
            continue
        tower, index, module, param = match.groups()
        prefix = f'{tower_inv[tower]}.transformer.resblocks.{index}'
        attn_module = module.split('.')[-1]
        if module.startswith('self_attn.') and attn_module in _QKV:
            qkv.setdefault(f'{prefix}.attn.in_proj_{param}', {})[attn_module] = value
        elif module in _BLOCK_INV:
            out[f'{prefix}.{_BLOCK_INV[module]}.{param}'] = value
        else:
            unmapped.append(key)
    for qkv_key, parts in qkv.items():
        missing = [p for p in _QKV if p not in parts]
        if missing:
            raise KeyError(f'HF checkpoint: {qkv_key} lacks {missing} of the q/k/v projections')
        out[qkv_key] = torch.cat([parts[p] for p in _QKV], dim=0)
    return out, unmapped


def export_hf_clip(state_dict: Mapping[str, torch.Tensor]
                   ) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """A ``CLOC`` state dict -> Hugging Face ``CLIPModel`` keys (the inverse of
    :func:`convert_hf_clip`).

    Returns:
        tuple: (HF state dict, cllip_mm keys left out: the Prompter, the grounding head,
        the region loss and anything else with no HF counterpart).
    """
    out: Dict[str, torch.Tensor] = {}
    left_out: List[str] = []
    for key, value in state_dict.items():
        if key in _PLAIN:
            out[_PLAIN[key]] = value
            continue
        if key in _TRANSPOSED:
            out[_TRANSPOSED[key]] = value.t().contiguous()
            continue
        match = _OURS_BLOCK_RE.match(key)
        if match is None:
            left_out.append(key)
            continue
        tower, index, rest = match.groups()
        prefix = f'{_TOWERS[tower]}.encoder.layers.{index}'
        if rest in ('attn.in_proj_weight', 'attn.in_proj_bias'):
            param = rest.rsplit('_', 1)[-1]
            for name, part in zip(_QKV, value.chunk(3, dim=0)):
                out[f'{prefix}.self_attn.{name}.{param}'] = part.contiguous()
            continue
        module, param = rest.rsplit('.', 1)
        if module not in _BLOCK:
            left_out.append(key)
            continue
        out[f'{prefix}.{_BLOCK[module]}.{param}'] = value
    return out, left_out


# ----------------------------------------------------------------------------- configs
def _hf_act(sub: Mapping, name: str) -> str:
    act = sub.get('hidden_act', 'quick_gelu')
    if act not in _HF_ACTS:
        raise ValueError(f'HF {name}.hidden_act={act!r} is not supported: cllip_mm encoders '
                         f'implement {sorted(_HF_ACTS)}')
    eps = sub.get('layer_norm_eps', _LAYER_NORM_EPS)
    if abs(eps - _LAYER_NORM_EPS) > 1e-12:
        raise ValueError(f'HF {name}.layer_norm_eps={eps} is not supported: cllip_mm encoders '
                         f'use nn.LayerNorm(eps={_LAYER_NORM_EPS})')
    return _HF_ACTS[act]


def _square(value, name: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ValueError(f'HF {name}={list(value)}: only square sizes are supported')
        value = value[0]
    return int(value)


def eot_token_id_from_hf(eos_token_id: Optional[int]) -> Optional[int]:
    """HF ``text_config.eos_token_id`` -> ``TextTransformer.eot_token_id`` (None = argmax)."""
    if eos_token_id is None or eos_token_id == HF_LEGACY_EOS_TOKEN_ID:
        return None
    return int(eos_token_id)


def eos_token_id_for_hf(eot_token_id: Optional[int]) -> int:
    """``TextTransformer.eot_token_id`` -> HF ``text_config.eos_token_id``.

    Argmax pooling (None) is HF's legacy value 2. A model that pools at the first id 2
    cannot be expressed in HF (2 means argmax there): move the EOT token first (see
    :func:`move_token_embedding`).
    """
    if eot_token_id is None:
        return HF_LEGACY_EOS_TOKEN_ID
    if eot_token_id == HF_LEGACY_EOS_TOKEN_ID:
        raise ValueError('eot_token_id=2 means argmax pooling to Hugging Face CLIP; move the EOT '
                         'token to another id before exporting')
    return int(eot_token_id)


def encoder_cfgs_from_hf_config(config: Mapping) -> Dict[str, dict]:
    """A Hugging Face CLIP ``config.json`` (dict) -> cllip_mm encoder configs.

    Accepts ``CLIPConfig`` (``model_type='clip'``) and the one-tower configs
    (``clip_vision_model`` / ``clip_text_model``).

    Returns:
        dict: ``image_encoder`` and / or ``text_encoder`` config dicts (with ``type``),
        including ``act`` from ``hidden_act`` and the text ``eot_token_id`` from
        ``eos_token_id``.
    """
    model_type = config.get('model_type', 'clip')
    if model_type == 'clip':
        vision, text = config.get('vision_config') or {}, config.get('text_config') or {}
        projection_dim = config.get('projection_dim', 512)
    elif model_type == 'clip_vision_model':
        vision, text, projection_dim = config, None, config.get('projection_dim', 512)
    elif model_type == 'clip_text_model':
        vision, text, projection_dim = None, config, config.get('projection_dim', 512)
    else:
        raise ValueError(f'HF config: model_type={model_type!r} is not a CLIP model')
    cfgs: Dict[str, dict] = {}
    if vision is not None:
        width = vision.get('hidden_size', 768)
        cfgs['image_encoder'] = dict(
            type='VisionTransformer',
            img_size=_square(vision.get('image_size', 224), 'vision_config.image_size'),
            patch_size=_square(vision.get('patch_size', 32), 'vision_config.patch_size'),
            width=width,
            layers=vision.get('num_hidden_layers', 12),
            heads=vision.get('num_attention_heads', 12),
            embed_dim=projection_dim,
            mlp_ratio=mlp_ratio_for(width, vision.get('intermediate_size', 3072)),
            act=_hf_act(vision, 'vision_config'))
    if text is not None:
        width = text.get('hidden_size', 512)
        cfgs['text_encoder'] = dict(
            type='TextTransformer',
            vocab_size=text.get('vocab_size', 49408),
            context_length=text.get('max_position_embeddings', 77),
            width=width,
            layers=text.get('num_hidden_layers', 12),
            heads=text.get('num_attention_heads', 8),
            embed_dim=projection_dim,
            mlp_ratio=mlp_ratio_for(width, text.get('intermediate_size', 2048)),
            act=_hf_act(text, 'text_config'),
            eot_token_id=eot_token_id_from_hf(text.get('eos_token_id', 49407)))
    return cfgs


def hf_config_from_encoder_cfgs(image_encoder: Mapping,
                                text_encoder: Mapping,
                                logit_scale: Optional[float] = None,
                                bos_token_id: Optional[int] = None,
                                pad_token_id: Optional[int] = None) -> dict:
    """cllip_mm encoder configs (as :func:`encoder_cfgs_from_hf_config` returns them)
    -> keyword arguments of ``transformers.CLIPConfig``.

    ``text_encoder['eot_token_id']`` must be set (None = argmax); see
    :func:`eos_token_id_for_hf`.
    """
    img, txt = dict(image_encoder), dict(text_encoder)
    if img['embed_dim'] != txt['embed_dim']:
        raise ValueError(f"image embed_dim {img['embed_dim']} != text embed_dim {txt['embed_dim']}")
    img_size = img['img_size']
    img_size = _square(img_size, 'image_encoder.img_size')
    vision_config = dict(
        hidden_size=img['width'],
        intermediate_size=int(img['width'] * img.get('mlp_ratio', 4.0)),
        num_hidden_layers=img['layers'],
        num_attention_heads=img['heads'],
        image_size=img_size,
        patch_size=img['patch_size'],
        hidden_act=img.get('act', 'gelu'),
        layer_norm_eps=_LAYER_NORM_EPS,
        projection_dim=img['embed_dim'])
    text_config = dict(
        vocab_size=txt['vocab_size'],
        hidden_size=txt['width'],
        intermediate_size=int(txt['width'] * txt.get('mlp_ratio', 4.0)),
        num_hidden_layers=txt['layers'],
        num_attention_heads=txt['heads'],
        max_position_embeddings=txt['context_length'],
        hidden_act=txt.get('act', 'gelu'),
        layer_norm_eps=_LAYER_NORM_EPS,
        projection_dim=txt['embed_dim'],
        eos_token_id=eos_token_id_for_hf(txt['eot_token_id']),
        bos_token_id=bos_token_id,
        pad_token_id=pad_token_id)
    config = dict(vision_config=vision_config, text_config=text_config,
                  projection_dim=img['embed_dim'])
    if logit_scale is not None:
        config['logit_scale_init_value'] = float(logit_scale)
    return config


def move_token_embedding(state_dict: Dict[str, torch.Tensor], token_id: int,
                         key: str = 'text_encoder.token_embedding.weight') -> int:
    """Append a copy of row ``token_id`` of the token embedding (in place).

    The new id (the old vocabulary size) then embeds exactly as ``token_id`` did; used
    to give the EOT token an id other than HF's reserved legacy value 2.

    Returns:
        int: The new id.
    """
    weight = state_dict[key]
    state_dict[key] = torch.cat([weight, weight[token_id:token_id + 1]], dim=0)
    return weight.shape[0]
