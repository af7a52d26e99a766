# Copyright (c) cllip_mm contributors. All rights reserved.
"""What a checkpoint's weights need besides their tensors, carried in its ``meta``.

Some choices are invisible in the tensors yet change what the weights compute: the MLP
activation of the two towers (OpenAI CLIP's weights, and every model continued from
them, need QuickGELU; the configs default to GELU) and the tokenizer the text tower
learnt its embeddings for. A model built with the wrong ones loads without a warning and
computes something else.

The project writes them as ``checkpoint['meta']['cllip_mm_arch']`` (:data:`META_KEY`), a
flat dict of strings (:func:`model_weights_meta`):

- ``vision_act`` / ``text_act``: ``'gelu'`` or ``'quick_gelu'``, the activation of the
  model's ``VisionTransformer`` / ``TextTransformer`` (wherever they are: ``image_encoder``
  of CLOC, ``backbone.vit`` of the mmdet ``ClocViT``, the text tower of ``ClocTextModel``);
- ``tokenizer_type``: the cllip_mm tokenizer class (``HFTokenizer``, ...);
- ``tokenizer_vocab``: ``'<n> tokens, sha256 <16 hex digits>'`` of its vocabulary (token
  -> id), the same for every copy of the same tokenizer.

Writers: :class:`~cllip_mm.engine.hooks.WeightsMetaHook` (training checkpoints) and the
converters in ``tools/model_converters``. Readers: :func:`check_weights_meta` (in
``tools/test.py``, ``tools/benchmark.py``, the converters, the hook and the mmdet plugins'
``init_weights``) raises :class:`WeightsMetaMismatch` naming the checkpoint, the key and
both values when a model differs from its checkpoint, and logs a warning when the
checkpoint has no such meta (written before, or by other code).
"""
import hashlib
import inspect
import json
import logging
import os
import os.path as osp
from typing import Any, Dict, Mapping, Optional, Union

import torch
from mmengine.logging import print_log

#: Key of the weights' needs in ``checkpoint['meta']``.
META_KEY = 'cllip_mm_arch'

#: How to fix a mismatch of each key.
_FIX = {
    'vision_act': "set the image encoder's act (model.image_encoder.act of CLOC, "
                  'model.backbone.act of the mmdet ClocViT)',
    'text_act': "set the text encoder's act (model.text_encoder.act of CLOC, "
                'model.language_model.text_encoder.act of the mmdet ClocTextModel)',
    'tokenizer_type': 'use the tokenizer the weights were trained with (model.tokenizer of '
                      'CLOC, model.language_model.tokenizer_path of ClocTextModel)',
    'tokenizer_vocab': 'use the tokenizer the weights were trained with (model.tokenizer.path '
                       'of CLOC, model.language_model.tokenizer_path of ClocTextModel)',
}


class WeightsMetaMismatch(ValueError):
    """A model differs from what its checkpoint's weights need (:data:`META_KEY`)."""


def _encoder_act(encoder: torch.nn.Module) -> str:
    """``'quick_gelu'`` or ``'gelu'``: the MLP activation of a cllip_mm encoder."""
    from cllip_mm.models.layers import QuickGELU
    for module in encoder.modules():
        if isinstance(module, QuickGELU):
            return 'quick_gelu'
        if isinstance(module, torch.nn.GELU):
            return 'gelu'
    raise ValueError(f'{type(encoder).__name__}: no QuickGELU or GELU in its blocks')


def tokenizer_identity(tokenizer: Any) -> Dict[str, str]:
    """``tokenizer_type`` and ``tokenizer_vocab`` (size and SHA-256 of the sorted token ->
    id map) of a cllip_mm tokenizer (``BaseHFTokenizer``): cheap (a few ms for CLIP's
    49408 tokens) and independent of where its files are."""
    vocab = tokenizer.tokenizer.get_vocab()
    digest = hashlib.sha256(json.dumps(sorted(vocab.items()), ensure_ascii=False)
                            .encode('utf-8')).hexdigest()[:16]
    return dict(tokenizer_type=type(tokenizer).__name__,
                tokenizer_vocab=f'{len(vocab)} tokens, sha256 {digest}')


def model_weights_meta(model: torch.nn.Module) -> Dict[str, str]:
    """What ``model``'s weights need (see the module docstring), for the parts it has:
    the first ``VisionTransformer`` / ``TextTransformer`` among its modules (a DDP or
    FSDP wrapper is looked through) and the first cllip_mm tokenizer held by one of them.

    Returns:
        dict: Some of ``vision_act``, ``text_act``, ``tokenizer_type``,
        ``tokenizer_vocab`` (str -> str); empty for a model with none of them.
    """
    from cllip_mm.models.backbones import VisionTransformer
    from cllip_mm.models.text_encoders import TextTransformer
    from cllip_mm.models.tokenizers.hf_tokenizer import BaseHFTokenizer
    meta: Dict[str, str] = {}
    tokenizer = None
    for module in model.modules():
        if isinstance(module, VisionTransformer) and 'vision_act' not in meta:
            meta['vision_act'] = _encoder_act(module.transformer)
        elif isinstance(module, TextTransformer) and 'text_act' not in meta:
            meta['text_act'] = _encoder_act(module.transformer)
        if tokenizer is None:
            tokenizer = next((v for v in vars(module).values()
                              if isinstance(v, BaseHFTokenizer)), None)
    if tokenizer is not None:
        meta.update(tokenizer_identity(tokenizer))
    return meta


def _default(cls: type, name: str) -> Any:
    return inspect.signature(cls.__init__).parameters[name].default


def cfg_weights_meta(model_cfg: Mapping) -> Dict[str, str]:
    """The activations a CLOC ``model`` config builds (its ``image_encoder`` /
    ``text_encoder`` ``act``, or the encoders' default), without building it."""
    from cllip_mm.models.backbones import VisionTransformer
    from cllip_mm.models.text_encoders import TextTransformer
    meta = {}
    for part, key, cls in (('image_encoder', 'vision_act', VisionTransformer),
                           ('text_encoder', 'text_act', TextTransformer)):
        if model_cfg.get(part):
            meta[key] = model_cfg[part].get('act', _default(cls, 'act'))
    return meta


_META_CACHE: Dict[tuple, Optional[dict]] = {}


def read_weights_meta(checkpoint: Union[str, Mapping]) -> Optional[Dict[str, str]]:
    """``checkpoint['meta'][META_KEY]`` of a checkpoint path (local files are read once
    per process while unchanged) or a loaded checkpoint; None when it has none (a bare
    state dict, a checkpoint written before or by other code)."""
    if isinstance(checkpoint, str):
        key = None
        if osp.isfile(checkpoint):
            stat = os.stat(checkpoint)
            key = (osp.abspath(checkpoint), stat.st_mtime_ns, stat.st_size)
            if key in _META_CACHE:
                return _META_CACHE[key]
        from mmengine.runner import CheckpointLoader
        loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
        result = read_weights_meta(loaded)
        if key is not None:
            _META_CACHE.clear()  # one entry: a converter or a detector reads one file
            _META_CACHE[key] = result
        return result
    meta = checkpoint.get('meta') if isinstance(checkpoint, Mapping) else None
    arch = meta.get(META_KEY) if isinstance(meta, Mapping) else None
    return dict(arch) if isinstance(arch, Mapping) else None


def compare_weights_meta(saved: Optional[Mapping[str, str]], current: Mapping[str, str],
                         checkpoint: str, what: str) -> None:
    """Raise :class:`WeightsMetaMismatch` if ``current`` (what ``what`` builds) differs
    from ``saved`` (``checkpoint``'s :data:`META_KEY`) on a key both have; log a warning
    if ``saved`` is None. Keys only one side has are not compared (e.g. the text tower
    of a checkpoint loaded into a detector backbone)."""
    if saved is None:
        print_log(f'{checkpoint} carries no meta[{META_KEY!r}] (written before cllip_mm '
                  f'recorded it, or by other code): cannot check that {what} has the '
                  f'activation and tokenizer its weights need; {what} has '
                  f'{dict(current)}', logger='current', level=logging.WARNING)
        return
    wrong = [(key, saved[key], current[key]) for key in current
             if key in saved and saved[key] != current[key]]
    if wrong:
        raise WeightsMetaMismatch(
            f'{checkpoint} does not fit {what}: '
            + '; '.join(f"meta[{META_KEY!r}][{key!r}] is {want!r} (what its weights need), "
                        f'{what} has {have!r}: {_FIX.get(key, "change " + key)}'
                        for key, want, have in wrong))


def check_weights_meta(model: torch.nn.Module, checkpoint: Union[str, Mapping],
                       what: Optional[str] = None, name: Optional[str] = None) -> None:
    """Check ``model`` against what ``checkpoint``'s weights need (see
    :func:`compare_weights_meta`).

    Args:
        model (nn.Module): The model the checkpoint is (or will be) loaded into.
        checkpoint (str | dict): Its path, or the loaded checkpoint (then give ``name``).
        what (str, optional): The model in messages, e.g. ``'the model of CONFIG'``.
        name (str, optional): The checkpoint in messages (default: its path).
    """
    name = name or (checkpoint if isinstance(checkpoint, str) else 'the checkpoint')
    compare_weights_meta(read_weights_meta(checkpoint), model_weights_meta(model), name,
                         what or f'the {type(model).__name__} model')


def check_pretrained_init(module: torch.nn.Module) -> None:
    """:func:`check_weights_meta` on each checkpoint of ``module``'s own ``init_cfg``
    of type ``'Pretrained'`` (the weights ``module.init_weights()`` will load)."""
    init_cfg = getattr(module, 'init_cfg', None)
    for cfg in init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]:
        if isinstance(cfg, Mapping) and cfg.get('type') == 'Pretrained' \
                and cfg.get('checkpoint'):
            check_weights_meta(module, cfg['checkpoint'],
                               what=f'{type(module).__name__} (init_cfg Pretrained)')
