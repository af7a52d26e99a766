# Copyright (c) cllip_mm contributors. All rights reserved.
"""An exported Hugging Face directory (``tools/model_converters/cllip_to_hf.py``) back
to a ``CLOC`` config and state dict, so the inferencer runs it like a checkpoint.

The directory holds ``config.json`` + ``model.safetensors`` (a ``CLIPModel``), the
tokenizer files, ``preprocessor_config.json`` (mean / std) and
``prompter.safetensors`` + ``prompter_config.json`` (the Prompter and grounding head;
see docs/interoperability.md). Nothing is downloaded.
"""
import json
import os.path as osp
from typing import Dict, NamedTuple

import torch

from cllip_mm.models.converters import (
    convert_hf_clip,
    encoder_cfgs_from_hf_config,
    load_hf_pretrained,
)
from cllip_mm.models.converters.prompter_io import PROMPTER_CONFIG, PROMPTER_WEIGHTS

PREPROCESSOR_CONFIG = 'preprocessor_config.json'


class HFCloc(NamedTuple):
    """What :func:`cloc_from_hf_dir` returns.

    Attributes:
        cfg (dict): A config with ``model`` (a ``CLOC``), ``test_dataloader.dataset.pipeline``
            (load, resize to the encoder's input size, pack: the shipped configs' test
            pipeline) and ``default_scope``.
        state_dict (dict): Tensors keyed like ``CLOC.state_dict()``.
    """
    cfg: dict
    state_dict: Dict[str, torch.Tensor]


def is_hf_dir(path) -> bool:
    """True for a directory with a Hugging Face ``config.json``."""
    return isinstance(path, str) and osp.isdir(path) and osp.isfile(osp.join(path, 'config.json'))


def cloc_from_hf_dir(directory: str) -> HFCloc:
    """Build the ``CLOC`` config and weights of an exported Hugging Face directory.

    The image encoder's ``patch_token_norm``, the Prompter and grounding head configs
    and the region-text logit scale come from ``prompter_config.json``; the encoders
    from ``config.json``; mean / std (0-255 scale, RGB) from
    ``preprocessor_config.json``; the tokenizer is the directory's own. Phrases are
    tokenised with the full text context (the export does not record the training
    ``phrase_context_length``; the causal text tower makes the two equal for phrases
    that fit the shorter one).

    Raises:
        FileNotFoundError: When a required file is missing (named).
    """
    for name in (PROMPTER_CONFIG, PROMPTER_WEIGHTS, PREPROCESSOR_CONFIG):
        if not osp.isfile(osp.join(directory, name)):
            raise FileNotFoundError(
                f'{directory!r}: no {name}; export with tools/model_converters/cllip_to_hf.py '
                '(without --no-prompter) to get a directory the inferencer can run')
    hf_state_dict, hf_config = load_hf_pretrained(directory)
    with open(osp.join(directory, PROMPTER_CONFIG)) as f:
        prompter_cfg = json.load(f)
    with open(osp.join(directory, PREPROCESSOR_CONFIG)) as f:
        processor = json.load(f)

    state_dict, unmapped = convert_hf_clip(hf_state_dict)
    if unmapped:
        raise KeyError(f'{directory}/model.safetensors: no cllip_mm place for {unmapped[:5]}')
    from safetensors.torch import load_file
    state_dict.update(load_file(osp.join(directory, PROMPTER_WEIGHTS), device='cpu'))

    encoders = encoder_cfgs_from_hf_config(hf_config)
    if set(encoders) != {'image_encoder', 'text_encoder'}:
        raise ValueError(f'{directory}/config.json: need a CLIPModel with both towers, '
                         f'found {sorted(encoders)}')
    vision = prompter_cfg.get('vision') or {}
    if vision.get('patch_token_norm'):
        encoders['image_encoder']['patch_token_norm'] = vision['patch_token_norm']
    text = encoders['text_encoder']
    model = dict(
        type='CLOC',
        data_preprocessor=dict(
            type='ImgDataPreprocessor',
            mean=[255. * m for m in processor['image_mean']],
            std=[255. * s for s in processor['image_std']],
            bgr_to_rgb=True,
            pad_size_divisor=encoders['image_encoder']['patch_size']),
        **encoders,
        tokenizer=dict(type='HFTokenizer', path=directory, context_length=text['context_length']),
        phrase_context_length=text['context_length'],
        clip_loss=dict(type='ClipContrastiveLoss'),
        prompter=dict(type='Prompter', **prompter_cfg['prompter']))
    if prompter_cfg.get('grounding_head'):
        model['grounding_head'] = dict(type='GroundingHead', **prompter_cfg['grounding_head'])
    if prompter_cfg.get('region_logit_scale') is not None:
        # Only for the scale of region-label probabilities (classify_regions).
        model['region_loss'] = dict(type='RegionTextContrastiveLoss')
        state_dict['region_loss.logit_scale'] = torch.tensor(
            float(prompter_cfg['region_logit_scale']))
    img_size = encoders['image_encoder']['img_size']
    img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    pipeline = [
        dict(type='LoadImageFromFileChecked'),
        dict(type='Resize', scale=(img_size[1], img_size[0]), keep_ratio=False),
        dict(type='PackRegionTextInputs'),
    ]
    cfg = dict(model=model, default_scope='cllip_mm',
               test_dataloader=dict(dataset=dict(pipeline=pipeline)))
    return HFCloc(cfg, state_dict)
