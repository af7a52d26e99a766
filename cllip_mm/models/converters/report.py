# Copyright (c) cllip_mm contributors. All rights reserved.
"""What a weight conversion loaded, left new, could not place, or resized: one report for
every converter (CLIP -> cllip_mm, cllip_mm -> the mmdet plugins)."""
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, List, Mapping, Tuple, Union

import torch

Shape = Tuple[int, ...]


@dataclass
class ConversionReport:
    """The outcome of mapping a source state dict onto a target model.

    Attributes:
        loaded (list[str]): Target keys that receive a source tensor.
        new (list[str]): Target keys with no source tensor that the target initialises
            itself (e.g. ``prompter.*`` of a CLOC made from CLIP, a detector's neck).
        unused (list[str]): Source tensors left out of the result (no place in the
            target, or a part that was not asked for), by their source names.
        unexpected (list[str]): Converted keys that the target model does not have
            (they would fail a strict load).
        missing (list[str]): Target keys under a converted part that got no tensor
            (e.g. blocks of a deeper target ViT).
        missing_parts (list[str]): Parts asked for that the source does not have.
        resized (dict): Target key -> (source shape, new shape) of tensors that were
            interpolated (the ViT position embedding for another input size).
        mismatched (dict): Target key -> (source shape, target shape) of tensors that
            cannot be loaded: the target's architecture differs from the source's.
        notes (list[str]): Shape differences the target resolves itself.
    """
    loaded: List[str] = field(default_factory=list)
    new: List[str] = field(default_factory=list)
    unused: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    missing_parts: List[str] = field(default_factory=list)
    resized: Dict[str, Tuple[Shape, Shape]] = field(default_factory=dict)
    mismatched: Dict[str, Tuple[Shape, Shape]] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every converted tensor fits: nothing missing, unexpected or mis-shaped."""
        return not (self.missing or self.missing_parts or self.unexpected or self.mismatched)

    def to_dict(self) -> dict:
        """Plain lists / dicts (JSON- and ``torch.load(weights_only=True)``-safe)."""
        out = asdict(self)
        for name in ('resized', 'mismatched'):
            out[name] = {k: [list(a), list(b)] for k, (a, b) in out[name].items()}
        return out

    def summary(self, max_keys: int = 8) -> str:
        """A short human-readable report; key lists are grouped by module."""
        lines = [f'loaded     {len(self.loaded):5d}  {_group(self.loaded)}',
                 f'new        {len(self.new):5d}  {_group(self.new)}  (initialised by the target)',
                 f'unused     {len(self.unused):5d}  {_group(self.unused)}  (source tensors left out)',
                 f'unexpected {len(self.unexpected):5d}  {_first(self.unexpected, max_keys)}',
                 f'resized    {len(self.resized):5d}']
        lines += [f'    {k}: {list(a)} -> {list(b)}' for k, (a, b) in self.resized.items()]
        if self.missing:
            lines.append(f'MISSING    {len(self.missing):5d}  {_first(self.missing, max_keys)}')
        if self.missing_parts:
            lines.append(f'MISSING PARTS (not in the source): {", ".join(self.missing_parts)}')
        if self.mismatched:
            lines.append(f'MISMATCHED {len(self.mismatched):5d}  (source shape vs model shape)')
            lines += [f'    {k}: {list(a)} vs {list(b)}'
                      for k, (a, b) in list(self.mismatched.items())[:max_keys]]
        lines += [f'note: {note}' for note in self.notes]
        lines.append('Result: ' + ('OK' if self.ok else 'PROBLEMS (see above)'))
        return '\n'.join(lines)

    __str__ = summary


def _group(keys: Iterable[str]) -> str:
    """'image_encoder.* (152), clip_loss.logit_scale' style summary of keys."""
    groups: Dict[str, List[str]] = OrderedDict()
    for key in keys:
        groups.setdefault(key.split('.', 1)[0], []).append(key)
    return ', '.join(f'{name}.* ({len(members)})' if len(members) > 1 else members[0]
                     for name, members in groups.items())


def _first(keys: List[str], n: int) -> str:
    return ', '.join(keys[:n]) + (f', ... (+{len(keys) - n})' if len(keys) > n else '')


def match_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    reference: Mapping[str, Union[torch.Tensor, torch.Size, Shape]],
    unmapped: Iterable[str] = (),
    resized: Mapping[str, Tuple[Shape, Shape]] = None,
) -> Tuple['OrderedDict[str, torch.Tensor]', ConversionReport]:
    """Keep the entries of ``state_dict`` that the target model can load.

    Args:
        state_dict (dict): Converted tensors, keyed like the target.
        reference (dict): The target's keys -> tensors or shapes (e.g. a
            ``model.state_dict()`` built on the meta device).
        unmapped (list[str]): Source keys the converter had no name for; they are
            reported as unused.
        resized (dict, optional): Entries resized by the converter, for the report.

    Returns:
        tuple: (the loadable state dict in ``reference`` order, the report). Converted
        entries the reference lacks are dropped and reported as unused.
    """
    report = ConversionReport(unused=list(unmapped), resized=dict(resized or {}))
    kept: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for key, ref in reference.items():
        if key not in state_dict:
            report.new.append(key)
            continue
        src_shape = tuple(state_dict[key].shape)
        ref_shape = tuple(ref.shape) if hasattr(ref, 'shape') else tuple(ref)
        if src_shape != ref_shape:
            report.mismatched[key] = (src_shape, ref_shape)
            continue
        kept[key] = state_dict[key]
        report.loaded.append(key)
    report.unused += [k for k in state_dict if k not in reference]
    return kept, report
