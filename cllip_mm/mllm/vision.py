# Copyright (c) cllip_mm contributors. All rights reserved.
"""A cllip_mm vision tower (CLOC or the CLIP baseline) as the MLLM's image encoder.

:func:`load_vision_source` builds the MMEngine model of a config, loads its checkpoint and
converts its image encoder to a Hugging Face ``CLIPVisionModel`` (config and weights, in
memory, through the converters behind ``tools/model_converters/cllip_to_hf.py``), so that the
MLLM is a ``transformers`` LLaVA whose vision tower is the cllip_mm encoder. A CLOC's
Prompter (either design) comes along as the optional region sampler, with its config and
weights. :func:`vit_output_from_hf` rebuilds, from the HF tower's outputs, the
:class:`~cllip_mm.models.backbones.vision_transformer.ViTOutput` the Prompter reads (the
patch-token map [B, C, h, w] of the last block, the stem's patch embeddings, the token
sequence); the export tests and tests/test_mllm/test_region_token.py check it against the
cllip_mm encoder.
"""
from typing import NamedTuple, Optional

import torch

#: Keys of the Prompter config that are not constructor arguments.
_NOT_KWARGS = ('init_cfg', )


class VisionSource(NamedTuple):
    """A cllip_mm vision tower, ready for :class:`~cllip_mm.mllm.modeling.RegionLlavaConfig`.

    Attributes:
        vision_config (dict): ``CLIPVisionConfig`` keyword arguments.
        vision_state_dict (dict): ``CLIPVisionModel`` weights (keys of this transformers
            version's ``CLIPVisionModel.state_dict()``).
        region_sampler (dict | None): The Prompter config (``type`` + arguments), None
            when the model has no Prompter (the CLIP baseline).
        region_sampler_state_dict (dict | None): The Prompter's weights.
        patch_token_norm (str): ``'none'`` or ``'ln_post'``: whether the Prompter's patch
            tokens went through ``ln_post`` (``VisionTransformer.patch_token_norm``).
        image_processing (dict): How images become ``pixel_values``: ``size`` [h, w] (the
            encoder's input size), ``mean`` / ``std`` (RGB, 0-255 scale, from the model's
            data preprocessor).
        model (nn.Module): The MMEngine model itself (eval mode), e.g. to compare with.
    """
    vision_config: dict
    vision_state_dict: dict
    region_sampler: Optional[dict]
    region_sampler_state_dict: Optional[dict]
    patch_token_norm: str
    image_processing: dict
    model: torch.nn.Module


def _plain(value):
    """Config values as JSON-friendly types (tuples -> lists, recursively)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def hf_vision_state_dict(model: torch.nn.Module, vision_config: dict) -> dict:
    """The ``CLIPVisionModel`` weights of a built CLOC / CLIP's image encoder."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from cllip_mm.models.converters import export_hf_clip
    state_dict = {k: v.detach().float() for k, v in model.state_dict().items()
                  if k.startswith('image_encoder.')}
    hf_state, _ = export_hf_clip(state_dict)
    target = CLIPVisionModel(CLIPVisionConfig(**vision_config)).state_dict()
    out = {}
    for key, value in hf_state.items():
        if not key.startswith('vision_model.'):
            continue  # visual_projection: the MLLM reads tokens, not the embedding
        for name in (key, key[len('vision_model.'):]):  # transformers 4 / 5 layouts
            if name in target:
                out[name] = value
                break
    missing = sorted(k for k in target if k not in out and not k.endswith('position_ids'))
    if missing:
        raise KeyError(f'CLIPVisionModel weights not found in the image encoder: {missing[:5]}')
    return out


def load_vision_source(config, checkpoint: Optional[str] = None,
                       cfg_options: Optional[dict] = None) -> VisionSource:
    """Build a cllip_mm CLOC / CLIP from its config and checkpoint.

    Args:
        config (str | Config | dict): The MMEngine config (file or object) with ``model``.
        checkpoint (str, optional): The MMEngine checkpoint (``iter_*.pth``). Every image
            encoder and Prompter weight must be in it. None keeps the random
            initialisation (tests).
        cfg_options (dict, optional): Config overrides (``Config.merge_from_dict``).

    Returns:
        VisionSource: The tower, its Prompter and how to preprocess images.
    """
    from mmengine.config import Config

    from cllip_mm.models.converters import (
        encoder_cfgs_from_model,
        hf_config_from_encoder_cfgs,
        load_cllip_state_dict,
    )
    from cllip_mm.registry import MODELS
    from cllip_mm.utils import register_all_modules

    cfg = Config.fromfile(config) if isinstance(config, str) else Config(dict(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    register_all_modules(init_default_scope=False)
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    model_cfg.pop('init_cfg', None)  # the checkpoint, not a pretrained CLIP, is loaded
    model = MODELS.build(model_cfg)
    if checkpoint is not None:
        state_dict = load_cllip_state_dict(checkpoint)
        missing, _ = model.load_state_dict(state_dict, strict=False)
        needed = [k for k in missing if k.startswith(('image_encoder.', 'prompter.'))]
        if needed:
            raise KeyError(f'{checkpoint}: no weights for {needed[:5]} '
                           f'(+{max(len(needed) - 5, 0)} more)')
    model.eval()

    encoders = encoder_cfgs_from_model(model)
    # only the vision half is used: the text tower's pooling id does not matter here
    text = dict(encoders['text_encoder'], eot_token_id=None)
    vision_config = hf_config_from_encoder_cfgs(encoders['image_encoder'], text)['vision_config']
    region_sampler = region_state = None
    if getattr(model, 'prompter', None) is not None:
        region_sampler = _plain({k: v for k, v in model_cfg['prompter'].items()
                                 if k not in _NOT_KWARGS})
        region_state = {k: v.detach().clone() for k, v in model.prompter.state_dict().items()}
    preprocessor = model.data_preprocessor
    h, w = model.image_encoder.img_size
    image_processing = dict(
        size=[int(h), int(w)],
        mean=[float(m) for m in preprocessor.mean.flatten()],
        std=[float(s) for s in preprocessor.std.flatten()])
    return VisionSource(vision_config, hf_vision_state_dict(model, vision_config), region_sampler,
                        region_state, model.image_encoder.patch_token_norm, image_processing,
                        model)


def vit_output_from_hf(vision_tower: torch.nn.Module, pixel_values: torch.Tensor,
                       last_hidden_state: torch.Tensor, patch_token_norm: str = 'none'):
    """The ``ViTOutput`` a cllip_mm Prompter reads, from an HF ``CLIPVisionModel`` run.

    Args:
        vision_tower (CLIPVisionModel): The tower (transformers 4 nests its layers under
            ``vision_model``, 5 does not; both work).
        pixel_values (Tensor): [B, 3, H, W] the tower's input.
        last_hidden_state (Tensor): [B, 1 + h*w, C] its last block's output (before
            ``post_layernorm``), class token first.
        patch_token_norm (str): ``'ln_post'`` applies ``post_layernorm`` to the patch
            tokens (as the cllip_mm encoder did), ``'none'`` does not.

    Returns:
        ViTOutput: ``patch_tokens`` [B, C, h, w], ``cls_token`` [B, C], ``patch_embeds``
        [B, C, h, w] (the stem's convolution) and ``tokens`` [B, 1 + h*w, C];
        ``image_embed`` is None (the projection is not part of the tower).
    """
    from cllip_mm.models.backbones.vision_transformer import ViTOutput
    from cllip_mm.models.converters import hf_patch_tokens
    vision = getattr(vision_tower, 'vision_model', vision_tower)
    patch_embeds = vision.embeddings.patch_embedding(pixel_values.to(last_hidden_state.dtype))
    norm = vision.post_layernorm if patch_token_norm == 'ln_post' else None
    patch_tokens = hf_patch_tokens(last_hidden_state, patch_embeds.shape[-2:], norm)
    cls_token = vision.post_layernorm(last_hidden_state[:, 0])
    return ViTOutput(None, patch_tokens, cls_token, patch_embeds.contiguous(), last_hidden_state)

