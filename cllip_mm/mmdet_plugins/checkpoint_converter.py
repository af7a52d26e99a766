# Copyright (c) cllip_mm contributors. All rights reserved.
"""cllip_mm pretraining checkpoint -> the parameter names of the mmdet plugins.

The converted ``state_dict`` uses the names the modules have inside an mmdet detector,
so the same file serves as the whole model's ``load_from`` / ``tools/test.py``
checkpoint and as each module's ``init_cfg=dict(type='Pretrained', checkpoint=...,
prefix=...)``:

=========================  ===============================================  ====================
cllip_mm (``CLOC``)        mmdet plugins                                    ``Pretrained`` prefix
=========================  ===============================================  ====================
``image_encoder.*``        ``backbone.vit.*`` (:class:`ClocViT`)            ``'backbone.'``
``text_encoder.*``         ``language_model.language_backbone.body.model.*``  ``'language_model.'``
                           (:class:`ClocTextModel`)
``prompter.*``             ``prompter.*`` (:class:`ClocRegionClassifier`)   (whole model)
``region_loss.logit_scale``  ``logit_scale`` (:class:`ClocRegionClassifier`)
=========================  ===============================================  ====================
"""
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from cllip_mm.models.layers import resize_pos_embed

#: part name -> (source prefix, target prefix)
PART_PREFIXES: Dict[str, Tuple[str, str]] = OrderedDict(
    backbone=('image_encoder.', 'backbone.vit.'),
    language_model=('text_encoder.', 'language_model.language_backbone.body.model.'),
    prompter=('prompter.', 'prompter.'),
)
#: Sources of the region classifier's temperature, in order of preference.
LOGIT_SCALE_KEYS = ('region_loss.logit_scale', 'clip_loss.logit_scale')
MAX_LOGIT_SCALE = math.log(100.)
POS_EMBED = 'image_encoder.positional_embedding'


@dataclass
class ConversionReport:
    """What :func:`convert_cllip_state_dict` did (and, after :func:`check_against_model`,
    how the result fits a model)."""
    converted: Dict[str, int] = field(default_factory=dict)
    unused: List[str] = field(default_factory=list)
    resized: List[str] = field(default_factory=list)
    missing_parts: List[str] = field(default_factory=list)
    # Filled by check_against_model:
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    shape_mismatch: List[str] = field(default_factory=list)
    left_to_model: Dict[str, int] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    checked: bool = False

    @property
    def ok(self) -> bool:
        """No converted tensor is missing, unexpected or of the wrong shape."""
        return not (self.missing or self.unexpected or self.shape_mismatch or self.missing_parts)

    def format(self) -> str:
        lines = ['Converted tensors per part:']
        for part, n in self.converted.items():
            target = PART_PREFIXES[part][1] + '*' if part in PART_PREFIXES else part
            lines.append(f'  {part:<15} {n:>5}  -> {target}')
        if self.missing_parts:
            lines.append(f'Parts asked for but absent from the source: {self.missing_parts}')
        if self.resized:
            lines += ['Resized:'] + [f'  {r}' for r in self.resized]
        lines.append(f'Source tensors not used downstream ({len(self.unused)}): '
                     + _summarise(self.unused))
        if self.checked:
            lines.append('Against the model:')
            lines.append(f'  missing (model expects them under the converted prefixes) '
                         f'({len(self.missing)}): {self.missing or "none"}')
            lines.append(f'  unexpected (in the checkpoint, not in the model) '
                         f'({len(self.unexpected)}): {self.unexpected or "none"}')
            lines.append(f'  shape mismatches ({len(self.shape_mismatch)}): '
                         f'{self.shape_mismatch or "none"}')
            lines += [f'  note: {n}' for n in self.notes]
            lines.append('  initialised by the detector itself (not in the checkpoint): '
                         + (', '.join(f'{k}: {v}' for k, v in self.left_to_model.items())
                            or 'none'))
        lines.append('Result: ' + ('OK' if self.ok else 'PROBLEMS (see above)'))
        return '\n'.join(lines)


def _summarise(keys: Sequence[str]) -> str:
    groups: Dict[str, int] = OrderedDict()
    for key in keys:
        head = key.split('.')[0]
        groups[head] = groups.get(head, 0) + 1
    return ', '.join(f'{k}.* ({v})' for k, v in groups.items()) or 'none'


def load_cllip_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The model ``state_dict`` of a cllip_mm (MMEngine) checkpoint file; a bare
    state dict is accepted too. The ``module.`` prefix of wrapped models is removed."""
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    state_dict = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state_dict, dict) or not state_dict:
        raise ValueError(f'{path}: no state_dict found (keys: {list(ckpt)[:10]})')
    if not any(k.startswith(('image_encoder.', 'module.image_encoder.')) for k in state_dict):
        raise ValueError(f'{path}: not a cllip_mm CLOC checkpoint: no image_encoder.* keys '
                         f'(first keys: {list(state_dict)[:5]})')
    return OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v)
                       for k, v in state_dict.items())


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
            (bicubic, as the encoder does at run time) to that patch grid. None keeps
            it (``ClocViT`` then resizes it when loading).
        parts (Sequence[str]): Among 'backbone', 'language_model', 'prompter'. The
            prompter part includes ``logit_scale`` (from ``region_loss.logit_scale``,
            else ``clip_loss.logit_scale``, clamped at log(100)).

    Returns:
        tuple: (new state dict, :class:`ConversionReport`).
    """
    unknown = set(parts) - set(PART_PREFIXES)
    if unknown:
        raise ValueError(f'unknown parts {sorted(unknown)}; choose from {list(PART_PREFIXES)}')
    report = ConversionReport()
    out: Dict[str, torch.Tensor] = OrderedDict()
    used = set()
    for part in parts:
        src_prefix, dst_prefix = PART_PREFIXES[part]
        keys = [k for k in state_dict if k.startswith(src_prefix)]
        if not keys:
            report.missing_parts.append(part)
            continue
        for key in keys:
            out[dst_prefix + key[len(src_prefix):]] = state_dict[key]
            used.add(key)
        report.converted[part] = len(keys)
        if part == 'prompter':
            scale_key = next((k for k in LOGIT_SCALE_KEYS if k in state_dict), None)
            if scale_key is not None:
                scale = state_dict[scale_key].detach().clone()
                out['logit_scale'] = scale.clamp(max=MAX_LOGIT_SCALE)
                used.add(scale_key)
                report.converted['logit_scale'] = 1

    if 'backbone' in report.converted and img_size is not None:
        pos = state_dict[POS_EMBED]
        patch = state_dict['image_encoder.conv1.weight'].shape[-1]
        side = math.isqrt(pos.shape[0] - 1)
        if side * side != pos.shape[0] - 1:
            raise ValueError(f'{POS_EMBED}: {pos.shape[0] - 1} grid tokens is not a square grid')
        dst_grid = (img_size[0] // patch, img_size[1] // patch)
        if img_size[0] % patch or img_size[1] % patch:
            raise ValueError(f'img_size {tuple(img_size)} is not a multiple of the patch '
                             f'size {patch}')
        if dst_grid != (side, side):
            out['backbone.vit.positional_embedding'] = resize_pos_embed(pos, (side, side), dst_grid)
            report.resized.append(
                f'backbone.vit.positional_embedding: {side}x{side} -> {dst_grid[0]}x{dst_grid[1]} '
                f'patch grid (img_size {tuple(img_size)}, patch {patch})')
    report.unused = [k for k in state_dict if k not in used]
    return out, report


def check_against_model(state_dict: Dict[str, torch.Tensor], model: nn.Module,
                        report: ConversionReport) -> ConversionReport:
    """Compare converted keys with ``model.state_dict()`` (the whole detector).

    Keys of the model under a converted prefix that the checkpoint lacks are
    *missing*; checkpoint keys the model lacks are *unexpected*; the model's other
    keys (neck, heads, ...) are counted per top-level module as initialised by the
    detector.
    """
    model_sd = model.state_dict()
    prefixes = tuple(dst for part, (_, dst) in PART_PREFIXES.items() if part in report.converted)
    if 'logit_scale' in report.converted:
        prefixes += ('logit_scale',)
    report.missing = [k for k in model_sd if k.startswith(prefixes) and k not in state_dict]
    report.unexpected = [k for k in state_dict if k not in model_sd]
    report.shape_mismatch, report.notes = [], []
    for k, v in state_dict.items():
        if k in model_sd and v.shape != model_sd[k].shape:
            msg = f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(model_sd[k].shape)}'
            if k.endswith('vit.positional_embedding'):  # ClocViT interpolates it on load
                report.notes.append(msg + ' (interpolated by ClocViT when loaded)')
            else:
                report.shape_mismatch.append(msg)
    converted_heads = {p.split('.')[0] for p in prefixes}
    left: Dict[str, int] = OrderedDict()
    for k in model_sd:
        if k not in state_dict and not k.startswith(prefixes):
            parts = k.split('.')
            # e.g. 'backbone.pyramid' next to the converted 'backbone.vit'
            head = '.'.join(parts[:2]) if parts[0] in converted_heads else parts[0]
            left[head] = left.get(head, 0) + 1
    report.left_to_model = left
    report.checked = True
    return report
