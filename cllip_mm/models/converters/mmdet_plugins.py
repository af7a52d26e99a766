# Copyright (c) cllip_mm contributors. All rights reserved.
"""cllip_mm pretraining checkpoint -> the parameter names of the mmdet plugins.

The converted ``state_dict`` uses the names the modules have inside an mmdet detector,
so the same file serves as the whole model's ``load_from`` / ``tools/test.py``
checkpoint and as each module's ``init_cfg=dict(type='Pretrained', checkpoint=...,
prefix=...)``:

===========================  =================================================  ======================
cllip_mm (``CLOC``)          mmdet plugins                                      ``Pretrained`` prefix
===========================  =================================================  ======================
``image_encoder.*``          ``backbone.vit.*`` (``ClocViT``)                   ``'backbone.'``
``text_encoder.*``           ``language_model.language_backbone.body.model.*``  ``'language_model.'``
                             (``ClocTextModel``)
``prompter.*``               ``prompter.*`` (``ClocRegionClassifier``)          (whole model)
``region_loss.logit_scale``  ``logit_scale`` (``ClocRegionClassifier``)
===========================  =================================================  ======================
"""
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..utils.logit_scale import MAX_LOGIT_SCALE
from ..utils.state_dict import sub_state_dict
from .arch import resize_image_pos_embed
from .report import ConversionReport

#: part name -> (source prefix, target prefix)
PART_PREFIXES: Dict[str, Tuple[str, str]] = OrderedDict(
    backbone=('image_encoder.', 'backbone.vit.'),
    language_model=('text_encoder.', 'language_model.language_backbone.body.model.'),
    prompter=('prompter.', 'prompter.'),
)
#: Sources of the region classifier's temperature, in order of preference.
LOGIT_SCALE_KEYS = ('region_loss.logit_scale', 'clip_loss.logit_scale')
#: Where the converted backbone keeps its position embedding.
MMDET_POS_EMBED = PART_PREFIXES['backbone'][1] + 'positional_embedding'


def converted_parts(report: ConversionReport) -> Dict[str, int]:
    """Part name -> number of converted tensors (``logit_scale`` counted apart), in
    :data:`PART_PREFIXES` order, from a report of :func:`convert_cllip_state_dict`."""
    counts: Dict[str, int] = OrderedDict()
    for part, (_, dst) in PART_PREFIXES.items():
        n = sum(k.startswith(dst) for k in report.loaded)
        if n:
            counts[part] = n
    if 'logit_scale' in report.loaded:
        counts['logit_scale'] = 1
    return counts


def convert_cllip_state_dict(
        state_dict: Dict[str, torch.Tensor],
        img_size: Optional[Tuple[int, int]] = None,
        parts: Sequence[str] = tuple(PART_PREFIXES)
) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Map a ``CLOC.state_dict()`` to the names of the mmdet plugins.

    Args:
        state_dict (dict): The cllip_mm model's state dict.
        img_size (tuple, optional): (h, w) the detector's ``ClocViT(img_size=...)``
            stores its position embedding for; the pretraining embedding is resized
            (bicubic, as the encoder does at run time) to that patch grid
            (:func:`resize_image_pos_embed`). None keeps it (``ClocViT`` then resizes it
            when loading).
        parts (Sequence[str]): Among 'backbone', 'language_model', 'prompter'. The
            prompter part includes ``logit_scale`` (from ``region_loss.logit_scale``,
            else ``clip_loss.logit_scale``, clamped at
            :data:`~cllip_mm.models.utils.MAX_LOGIT_SCALE`, log 100).

    Returns:
        tuple: (new state dict, :class:`ConversionReport` with ``loaded``,
        ``unused``, ``missing_parts`` and ``resized``; :func:`check_against_model`
        fills in the rest).
    """
    unknown = set(parts) - set(PART_PREFIXES)
    if unknown:
        raise ValueError(f'unknown parts {sorted(unknown)}; choose from {list(PART_PREFIXES)}')
    report = ConversionReport()
    out: Dict[str, torch.Tensor] = OrderedDict()
    used = set()
    for part in parts:
        src_prefix, dst_prefix = PART_PREFIXES[part]
        weights = sub_state_dict(state_dict, src_prefix)
        if not weights:
            report.missing_parts.append(part)
            continue
        for key, value in weights.items():
            out[dst_prefix + key] = value
            used.add(src_prefix + key)
        if part == 'prompter':
            scale_key = next((k for k in LOGIT_SCALE_KEYS if k in state_dict), None)
            if scale_key is not None:
                out['logit_scale'] = state_dict[scale_key].detach().clone().clamp(
                    max=MAX_LOGIT_SCALE)
                used.add(scale_key)

    if MMDET_POS_EMBED in out and img_size is not None:
        report.resized.update(resize_image_pos_embed(out, img_size, key=MMDET_POS_EMBED))
    report.loaded = list(out)
    report.unused = [k for k in state_dict if k not in used]
    return out, report


def check_against_model(state_dict: Dict[str, torch.Tensor], model: nn.Module,
                        report: ConversionReport) -> ConversionReport:
    """Compare converted keys with ``model.state_dict()`` (the whole detector).

    Keys of the model under a converted prefix that the checkpoint lacks are
    *missing*; checkpoint keys the model lacks are *unexpected*; the model's other
    keys (neck, heads, ...) are *new* (initialised by the detector). A position
    embedding of another grid is a note, not a mismatch: ``ClocViT`` resizes it on load.
    """
    model_sd = model.state_dict()
    parts = converted_parts(report)
    prefixes = tuple(PART_PREFIXES[p][1] for p in parts if p in PART_PREFIXES)
    if 'logit_scale' in parts:
        prefixes += ('logit_scale', )
    report.missing = [k for k in model_sd if k.startswith(prefixes) and k not in state_dict]
    report.unexpected = [k for k in state_dict if k not in model_sd]
    report.new = [k for k in model_sd if k not in state_dict and not k.startswith(prefixes)]
    report.mismatched, report.notes = {}, []
    for k, v in state_dict.items():
        if k in model_sd and v.shape != model_sd[k].shape:
            shapes = (tuple(v.shape), tuple(model_sd[k].shape))
            if k == MMDET_POS_EMBED:
                report.notes.append(f'{k}: checkpoint {list(shapes[0])} vs model '
                                    f'{list(shapes[1])} (interpolated by ClocViT when loaded)')
            else:
                report.mismatched[k] = shapes
    return report
