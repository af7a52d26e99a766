# Copyright (c) cllip_mm contributors. All rights reserved.
"""Refuse to evaluate a checkpoint that leaves part of the model uninitialised, or that
the model does not fit.

MMEngine's ``load_from`` loads non-strictly and only logs missing keys: the demo's CLIP
checkpoint evaluated under a CLOC config scores a *randomly initialised* Prompter and exits 0.
:func:`uninitialised_modules` names the model's modules that the checkpoint has no weights for;
``tools/test.py`` and ``tools/benchmark.py`` stop on them unless ``--allow-uninitialised``
(:func:`check_checkpoint_for_evaluation`). They also stop on a model whose activations or
tokenizer differ from what the weights need (:mod:`cllip_mm.utils.weights_meta`).
"""
from typing import Dict, List, Mapping, Optional, Union

import torch
from mmengine.runner import CheckpointLoader

from cllip_mm.models.utils.state_dict import strip_module_prefix
from .weights_meta import check_weights_meta


def _load(checkpoint: Union[str, Mapping]) -> Mapping:
    if isinstance(checkpoint, str):
        return CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    return checkpoint


def uninitialised_modules(model: torch.nn.Module,
                          checkpoint: Union[str, Mapping]) -> Dict[str, List[str]]:
    """The model's top-level modules with state the checkpoint lacks.

    Args:
        model (nn.Module): The model to load into (a DDP wrapper's ``module.`` is ignored).
        checkpoint (str | dict): A checkpoint path (an MMEngine checkpoint or a bare state
            dict), or such a checkpoint loaded.

    Returns:
        dict: top-level module name -> its missing keys (sorted); empty when the
        checkpoint covers the whole model.
    """
    loaded = _load(checkpoint)
    state = loaded.get('state_dict', loaded) if isinstance(loaded, Mapping) else {}
    have = {strip_module_prefix(k) for k in state}
    missing: Dict[str, List[str]] = {}
    for key in sorted(strip_module_prefix(k) for k in model.state_dict()):
        if key not in have:
            missing.setdefault(key.split('.')[0], []).append(key)
    return missing


def check_checkpoint_covers(model: torch.nn.Module, checkpoint: str, config: str,
                            loaded: Optional[Mapping] = None) -> None:
    """Raise ``RuntimeError`` naming the modules ``checkpoint`` leaves uninitialised
    (``loaded``: the checkpoint already loaded, to read it once)."""
    missing = uninitialised_modules(model, checkpoint if loaded is None else loaded)
    if missing:
        parts = ', '.join(f'{name} ({len(keys)} tensors, e.g. {keys[0]})'
                          for name, keys in missing.items())
        raise RuntimeError(
            f'{checkpoint} has no weights for {parts} of the model of {config}: these modules '
            'would be evaluated with random weights. Use the config the checkpoint was trained '
            'with, or pass --allow-uninitialised to evaluate anyway.')


def check_checkpoint_for_evaluation(model: torch.nn.Module, checkpoint: str, config: str,
                                    allow_uninitialised: bool = False) -> Mapping:
    """What ``tools/test.py`` and ``tools/benchmark.py`` check before evaluating
    ``checkpoint`` with ``model`` (built from ``config``), reading the file once: that it
    covers the model (:func:`check_checkpoint_covers`, unless ``allow_uninitialised``) and
    that the model has the activations and tokenizer its weights need
    (:func:`~cllip_mm.utils.weights_meta.check_weights_meta`: ``WeightsMetaMismatch``;
    a checkpoint without that meta is a logged warning).

    Returns:
        dict: The loaded checkpoint (e.g. for its ``meta``).
    """
    loaded = _load(checkpoint)
    if not allow_uninitialised:
        check_checkpoint_covers(model, checkpoint, config, loaded)
    check_weights_meta(model, loaded, what=f'the model of {config}', name=checkpoint)
    return loaded
