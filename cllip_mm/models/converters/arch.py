# Copyright (c) cllip_mm contributors. All rights reserved.
"""Architectures of converted checkpoints: encoder configs from tensor shapes, the
target model's expected keys, position embedding resizing, and config snippets."""
import re
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch

from ..layers import resize_pos_embed, square_grid

Shape = Tuple[int, ...]
#: The sub-modules of :class:`cllip_mm.models.CLOC` that hold weights, by attribute name.
CLOC_WEIGHT_MODULES = ('image_encoder', 'text_encoder', 'clip_loss', 'prompter',
                       'grounding_head', 'region_loss', 'grounding_loss')


def mlp_ratio_for(width: int, hidden: int) -> float:
    """The ``mlp_ratio`` for which ``int(width * mlp_ratio) == hidden`` (what the blocks
    compute), e.g. 4.0 for 768 -> 3072."""
    ratio = hidden / width
    if int(width * ratio) != hidden:  # float rounding below an integer
        ratio = (hidden + 0.5) / width
    return ratio


def _num_blocks(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r'transformer\.resblocks\.(\d+)\.')
    indices = {int(m.group(1)) for k in state_dict if (m := pattern.match(k))}
    if indices != set(range(len(indices))):
        raise KeyError(f'{prefix}transformer.resblocks: block indices {sorted(indices)} are not 0..n-1')
    return len(indices)


def _require(state_dict: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state_dict:
        raise KeyError(f'converted state dict lacks {key!r}')
    return state_dict[key]


def encoder_cfgs_from_state_dict(state_dict: Mapping[str, torch.Tensor],
                                 act: str = 'gelu',
                                 vision_heads: Optional[int] = None,
                                 text_heads: Optional[int] = None,
                                 eot_token_id: Optional[int] = None,
                                 head_width: int = 64) -> Dict[str, dict]:
    """Encoder configs read off the shapes of a ``CLOC``-keyed state dict.

    Head counts are not visible in the weights: they default to ``width // head_width``
    (OpenAI / open_clip use 64-wide heads). ``act`` and ``eot_token_id`` (None = argmax
    pooling, OpenAI's rule) are not visible either and are passed through.

    Returns:
        dict: ``image_encoder`` and / or ``text_encoder`` config dicts (with ``type``).
    """
    cfgs: Dict[str, dict] = {}
    if 'image_encoder.conv1.weight' in state_dict:
        p = 'image_encoder.'
        conv = state_dict[p + 'conv1.weight']  # [C, 3, patch, patch]
        width, patch = conv.shape[0], conv.shape[-1]
        grid, _ = square_grid(_require(state_dict, p + 'positional_embedding'),
                              name=p + 'positional_embedding')
        hidden = _require(state_dict, p + 'transformer.resblocks.0.mlp.c_fc.weight').shape[0]
        cfgs['image_encoder'] = dict(
            type='VisionTransformer', img_size=grid * patch, patch_size=patch, width=width,
            layers=_num_blocks(state_dict, p), heads=vision_heads or width // head_width,
            embed_dim=_require(state_dict, p + 'proj').shape[1],
            mlp_ratio=mlp_ratio_for(width, hidden), act=act)
    if 'text_encoder.token_embedding.weight' in state_dict:
        p = 'text_encoder.'
        vocab_size, width = state_dict[p + 'token_embedding.weight'].shape
        hidden = _require(state_dict, p + 'transformer.resblocks.0.mlp.c_fc.weight').shape[0]
        cfgs['text_encoder'] = dict(
            type='TextTransformer', vocab_size=vocab_size,
            context_length=_require(state_dict, p + 'positional_embedding').shape[0],
            width=width, layers=_num_blocks(state_dict, p),
            heads=text_heads or width // head_width,
            embed_dim=_require(state_dict, p + 'text_projection').shape[1],
            mlp_ratio=mlp_ratio_for(width, hidden), act=act, eot_token_id=eot_token_id)
    return cfgs


def encoder_cfgs_from_model(model: torch.nn.Module) -> Dict[str, dict]:
    """Encoder configs of a built ``CLOC`` (reads the modules, so defaults that CLOC
    fills in from its tokenizer, like ``eot_token_id``, are included)."""
    from ..layers import QuickGELU
    towers = ('image_encoder.', 'text_encoder.')
    cfgs = encoder_cfgs_from_state_dict(
        {k: v for k, v in model.state_dict().items() if k.startswith(towers)})
    for name in ('image_encoder', 'text_encoder'):
        encoder = getattr(model, name)
        block = encoder.transformer.resblocks[0]
        cfgs[name].update(heads=block.attn.heads,
                          act='quick_gelu' if isinstance(block.mlp.gelu, QuickGELU) else 'gelu')
    cfgs['image_encoder']['img_size'] = tuple(model.image_encoder.img_size)
    cfgs['text_encoder']['eot_token_id'] = model.text_encoder.eot_token_id
    return cfgs


def resize_image_pos_embed(state_dict: Dict[str, torch.Tensor],
                           img_size: Union[int, Sequence[int]],
                           key: str = 'image_encoder.positional_embedding'
                           ) -> Dict[str, Tuple[Shape, Shape]]:
    """Resize the ViT position embedding in ``state_dict`` (in place) for another input
    size, bicubically (:func:`cllip_mm.models.layers.resize_pos_embed`).

    Args:
        state_dict (dict): With ``key`` and the ``conv1.weight`` next to it (for the
            patch size), and a square source grid: ``CLOC``-keyed by default,
            ``backbone.vit.positional_embedding`` for the mmdet plugins.
        img_size (int | tuple): The new (h, w) input size, a multiple of the patch size.
        key (str): The position embedding's key.

    Returns:
        dict: ``{key: (old shape, new shape)}``, empty when nothing changed.
    """
    h, w = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    patch = _require(state_dict, key.rsplit('.', 1)[0] + '.conv1.weight').shape[-1]
    if h % patch or w % patch:
        raise ValueError(f'img_size {(h, w)} is not a multiple of the patch size {patch}')
    pos = _require(state_dict, key)
    src_grid = square_grid(pos, name=key)
    if src_grid == (h // patch, w // patch):
        return {}
    state_dict[key] = resize_pos_embed(pos, src_grid, (h // patch, w // patch))
    return {key: (tuple(pos.shape), tuple(state_dict[key].shape))}


def cloc_heads_cfg(image_encoder: Mapping) -> Dict[str, dict]:
    """Prompter and grounding head configs whose widths fit ``image_encoder``."""
    return dict(
        prompter=dict(type='Prompter', width=image_encoder['width'],
                      embed_dim=image_encoder['embed_dim'], heads=image_encoder['heads']),
        grounding_head=dict(type='GroundingHead', embed_dim=image_encoder['embed_dim'],
                            width=image_encoder['width']))


def reference_shapes(model_cfg: Mapping, vocab_size: Optional[int] = None) -> Dict[str, torch.Size]:
    """Keys and shapes of the weights of the ``CLOC`` that ``model_cfg`` describes.

    The sub-modules (:data:`CLOC_WEIGHT_MODULES`) are built one at a time and
    dropped, so no tokenizer file is needed. ``vocab_size`` stands in for the
    tokenizer's when the text encoder config has none.
    """
    from cllip_mm.registry import MODELS
    shapes: Dict[str, torch.Size] = {}
    for name in CLOC_WEIGHT_MODULES:
        cfg = model_cfg.get(name)
        if not cfg:
            continue
        cfg = dict(cfg)
        if name == 'text_encoder' and 'vocab_size' not in cfg:
            if vocab_size is None:
                raise ValueError('text_encoder config has no vocab_size; pass vocab_size')
            cfg['vocab_size'] = vocab_size
        module = MODELS.build(cfg)
        shapes.update({f'{name}.{k}': v.shape for k, v in module.state_dict().items()})
        del module
    return shapes


def format_config(variables: Mapping[str, Any], header: str = '') -> str:
    """``{name: value}`` as the text of a python config file (``mmengine.Config.dump``),
    after ``header`` as ``#`` comment lines."""
    from mmengine.config import Config
    lines = [f'# {line}' if line else '#' for line in header.splitlines()]
    return ''.join(line + '\n' for line in lines) + Config(dict(variables)).dump()
