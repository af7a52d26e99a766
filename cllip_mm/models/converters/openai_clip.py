# Copyright (c) cllip_mm contributors. All rights reserved.
"""OpenAI CLIP / open_clip state dicts -> cllip_mm ``CLOC`` keys.

cllip_mm's encoders use OpenAI's parameter names, so the mapping is a prefix change:

- ``visual.{conv1, class_embedding, positional_embedding, ln_pre, transformer, ln_post,
  proj}*`` -> ``image_encoder.*``;
- the text tower's top-level ``{token_embedding, positional_embedding, transformer,
  ln_final, text_projection}*`` (``text.*`` in open_clip's ``CustomTextCLIP``) ->
  ``text_encoder.*``;
- ``logit_scale`` (and SigLIP's ``logit_bias``) -> ``clip_loss.*``.

A DDP ``module.`` prefix is stripped. Entries that are not weights are dropped: the
``input_resolution`` / ``context_length`` / ``vocab_size`` scalars of OpenAI's
TorchScript archives and ``attn_mask`` buffers. Only ViT image towers are supported
(OpenAI's ModifiedResNet ``RN*`` models raise).
"""
from typing import Dict, List, Mapping, Tuple

import torch

from ..utils.state_dict import strip_module_prefix, strip_prefix

_VISUAL = ('conv1.', 'class_embedding', 'positional_embedding', 'ln_pre.', 'transformer.',
           'ln_post.', 'proj')
_TEXT = ('token_embedding.', 'positional_embedding', 'transformer.', 'ln_final.',
         'text_projection', 'text_projection.')
_DROPPED = ('input_resolution', 'context_length', 'vocab_size')


def _is(rest: str, names: Tuple[str, ...]) -> bool:
    return any(rest == n.rstrip('.') or (n.endswith('.') and rest.startswith(n)) for n in names)


def convert_openai_clip(state_dict: Mapping[str, torch.Tensor]
                        ) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """An OpenAI CLIP or open_clip (``CLIP`` / ``CustomTextCLIP`` with a native text
    tower) state dict -> ``CLOC`` keys.

    Returns:
        tuple: (converted state dict, source keys that have no cllip_mm counterpart).
    """
    if any(k.startswith(('visual.layer1.', 'visual.attnpool.', 'module.visual.layer1.'))
           for k in state_dict):
        raise ValueError('ResNet CLIP image towers (RN50, ...) are not supported: cllip_mm '
                         'encoders are ViTs')
    out: Dict[str, torch.Tensor] = {}
    unmapped: List[str] = []
    for key, value in state_dict.items():
        key = strip_module_prefix(key)
        if key in _DROPPED or key.endswith('attn_mask'):
            continue
        if key in ('logit_scale', 'logit_bias'):
            out[f'clip_loss.{key}'] = value
        elif key.startswith('visual.') and _is(key[len('visual.'):], _VISUAL):
            out['image_encoder.' + key[len('visual.'):]] = value
        elif _is(strip_prefix(key, 'text.'), _TEXT):
            rest = strip_prefix(key, 'text.')
            if rest == 'text_projection.weight':  # open_clip's Linear projection [D, W]
                out['text_encoder.text_projection'] = value.t().contiguous()
            else:
                out['text_encoder.' + rest] = value
        else:
            unmapped.append(key)
    pos = out.get('image_encoder.positional_embedding')
    if pos is not None and pos.dim() == 3:  # [1, 1+N, C] in some open_clip variants
        out['image_encoder.positional_embedding'] = pos[0]
    return out, unmapped
