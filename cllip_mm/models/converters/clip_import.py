# Copyright (c) cllip_mm contributors. All rights reserved.
"""Existing CLIP weights -> a ``CLOC`` state dict, its model config and a report."""
from typing import Dict, Mapping, NamedTuple, Optional, Sequence, Union

import torch

from .arch import (
    cloc_heads_cfg,
    encoder_cfgs_from_state_dict,
    reference_shapes,
    resize_image_pos_embed,
)
from .hf_clip import convert_hf_clip, encoder_cfgs_from_hf_config
from .openai_clip import convert_openai_clip
from .report import ConversionReport, match_state_dict

SRC_FORMATS = ('hf', 'open_clip', 'openai')
#: The activation of each source format when nothing says otherwise (HF: ``hidden_act``).
DEFAULT_ACT = {'openai': 'quick_gelu', 'open_clip': 'gelu'}


class ClipImport(NamedTuple):
    """What :func:`import_clip` returns.

    Attributes:
        state_dict (dict): Tensors keyed like ``CLOC.state_dict()`` (only loadable ones).
        model_cfg (dict): ``image_encoder`` / ``text_encoder`` configs of the source
            architecture plus ``prompter`` / ``grounding_head`` widths that fit it (the
            ``model`` override of a CLOC config).
        report (ConversionReport): Loaded / new / unused / resized keys.
    """
    state_dict: Dict[str, torch.Tensor]
    model_cfg: dict
    report: ConversionReport


def import_clip(state_dict: Mapping[str, torch.Tensor],
                src_format: str,
                hf_config: Optional[Mapping] = None,
                img_size: Optional[Union[int, Sequence[int]]] = None,
                act: Optional[str] = None,
                vision_heads: Optional[int] = None,
                text_heads: Optional[int] = None,
                target_cfg: Optional[Mapping] = None) -> ClipImport:
    """Convert CLIP weights for ``CLOC``.

    Args:
        state_dict (dict): The source tensors.
        src_format (str): 'hf' (``CLIPModel`` keys; needs ``hf_config``), 'open_clip' or
            'openai'.
        hf_config (dict, optional): The HF ``config.json``; gives heads, ``act`` and the
            text pooling rule (``eot_token_id``).
        img_size (int | tuple, optional): Input size to resize the position embedding
            for; the source's when None.
        act (str, optional): 'gelu' or 'quick_gelu'; overrides the default of the
            format (:data:`DEFAULT_ACT`; HF: ``hidden_act``).
        vision_heads, text_heads (int, optional): Head counts for open_clip / OpenAI
            sources (default width // 64).
        target_cfg (dict, optional): The ``model`` config of the CLOC to load into; the
            report is computed against it. Defaults to the derived ``model_cfg``.

    Returns:
        ClipImport: The loadable state dict, the derived model config and the report.
    """
    if src_format not in SRC_FORMATS:
        raise ValueError(f'src_format must be one of {SRC_FORMATS}, got {src_format!r}')
    if src_format == 'hf':
        if hf_config is None:
            raise ValueError("src_format='hf' needs the model's config.json (hf_config)")
        converted, unmapped = convert_hf_clip(state_dict)
        encoders = encoder_cfgs_from_hf_config(hf_config)
        if act is not None:
            for cfg in encoders.values():
                cfg['act'] = act
    else:
        converted, unmapped = convert_openai_clip(state_dict)
        encoders = encoder_cfgs_from_state_dict(
            converted, act=act or DEFAULT_ACT[src_format], vision_heads=vision_heads,
            text_heads=text_heads, eot_token_id=None)
    if not encoders:
        raise ValueError(f'no CLIP image or text tower found in the {src_format} state dict')

    resized = {}
    if img_size is not None and 'image_encoder' in encoders:
        resized = resize_image_pos_embed(converted, img_size)
        encoders['image_encoder']['img_size'] = (
            img_size if isinstance(img_size, int) else tuple(img_size))

    model_cfg = dict(encoders)
    if 'image_encoder' in encoders:
        model_cfg.update(cloc_heads_cfg(encoders['image_encoder']))
    target = dict(target_cfg) if target_cfg is not None else dict(
        model_cfg, clip_loss=dict(type='ClipContrastiveLoss'),
        region_loss=dict(type='RegionTextContrastiveLoss'))
    vocab = converted.get('text_encoder.token_embedding.weight')
    reference = reference_shapes(target, vocab_size=None if vocab is None else vocab.shape[0])
    kept, report = match_state_dict(converted, reference, unmapped, resized)
    return ClipImport(dict(kept), model_cfg, report)
