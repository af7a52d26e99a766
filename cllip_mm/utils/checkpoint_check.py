# Copyright (c) cllip_mm contributors. All rights reserved.
"""Refuse to evaluate a checkpoint that leaves part of the model uninitialised.

MMEngine's ``load_from`` loads non-strictly and only logs missing keys: the demo's CLIP
checkpoint evaluated under a CLOC config scores a *randomly initialised* Prompter and exits 0.
:func:`uninitialised_modules` names the model's modules that the checkpoint has no weights for;
``tools/test.py`` and ``tools/benchmark.py`` stop on them unless ``--allow-uninitialised``.
"""
from typing import Dict, List

import torch
from mmengine.runner import CheckpointLoader


def _strip(key: str) -> str:
    return key[len('module.'):] if key.startswith('module.') else key


def uninitialised_modules(model: torch.nn.Module, checkpoint: str) -> Dict[str, List[str]]:
    """The model's top-level modules with state the checkpoint lacks.

    Args:
        model (nn.Module): The model to load into (a DDP wrapper's ``module.`` is ignored).
        checkpoint (str): A checkpoint path (an MMEngine checkpoint or a bare state dict).

    Returns:
        dict: top-level module name -> its missing keys (sorted); empty when the
        checkpoint covers the whole model.
    """
    loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    state = loaded.get('state_dict', loaded) if isinstance(loaded, dict) else {}
    have = {_strip(k) for k in state}
    missing: Dict[str, List[str]] = {}
    for key in sorted(_strip(k) for k in model.state_dict()):
        if key not in have:
            missing.setdefault(key.split('.')[0], []).append(key)
    return missing


def check_checkpoint_covers(model: torch.nn.Module, checkpoint: str, config: str) -> None:
    """Raise ``RuntimeError`` naming the modules ``checkpoint`` leaves uninitialised."""
    missing = uninitialised_modules(model, checkpoint)
    if missing:
        parts = ', '.join(f'{name} ({len(keys)} tensors, e.g. {keys[0]})'
                          for name, keys in missing.items())
        raise RuntimeError(
            f'{checkpoint} has no weights for {parts} of the model of {config}: these modules '
            'would be evaluated with random weights. Use the config the checkpoint was trained '
            'with, or pass --allow-uninitialised to evaluate anyway.')
