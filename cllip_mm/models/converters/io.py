# Copyright (c) cllip_mm contributors. All rights reserved.
"""Reading source checkpoints and writing converted ones (no network access)."""
import json
import os
import os.path as osp
import shutil
import zipfile
from typing import Dict, List, Optional, Tuple

import torch

from ..utils.state_dict import strip_module_prefixes

#: Files of a Hugging Face tokenizer saved with ``save_pretrained``.
TOKENIZER_FILES = ('tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json',
                   'vocab.json', 'merges.txt', 'added_tokens.json')


def _load_safetensors(path: str) -> Dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    return load_file(path, device='cpu')


def _unwrap(obj, path: str) -> Dict[str, torch.Tensor]:
    """A state dict from a checkpoint object: open_clip / MMEngine training checkpoints
    keep it under ``state_dict``; a DDP ``module.`` prefix is left to the converters."""
    if isinstance(obj, dict) and 'state_dict' in obj and isinstance(obj['state_dict'], dict):
        obj = obj['state_dict']
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f'{path}: expected a state dict (str -> Tensor), got {type(obj).__name__}')
    return dict(obj)


def load_state_dict_file(path: str) -> Dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, a ``torch.save``-d state dict / checkpoint
    (``.pt``, ``.pth``, ``.bin``, loaded with ``weights_only=True``), or an OpenAI
    TorchScript archive (``ViT-B-16.pt``)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'no checkpoint file at {path!r}')
    if path.endswith('.safetensors'):
        return _load_safetensors(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            is_torchscript = any(n.endswith('constants.pkl') for n in archive.namelist())
        if is_torchscript:
            return {k: v for k, v in torch.jit.load(path, map_location='cpu').state_dict().items()}
    return _unwrap(torch.load(path, map_location='cpu', weights_only=True), path)


def load_cllip_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The model ``state_dict`` of a cllip_mm (MMEngine) CLOC checkpoint file (a bare
    state dict is accepted too), without the ``module.`` prefix of wrapped models."""
    state_dict = load_state_dict_file(path)
    if not any(k.startswith(('image_encoder.', 'module.image_encoder.')) for k in state_dict):
        raise ValueError(f'{path}: not a cllip_mm CLOC checkpoint: no image_encoder.* keys '
                         f'(first keys: {list(state_dict)[:5]})')
    return strip_module_prefixes(state_dict)


def load_hf_pretrained(directory: str) -> Tuple[Dict[str, torch.Tensor], dict]:
    """The weights and ``config.json`` of a ``save_pretrained`` directory: a single or
    sharded ``model.safetensors`` (or, failing that, ``pytorch_model.bin``)."""
    config_file = osp.join(directory, 'config.json')
    if not osp.isfile(config_file):
        raise FileNotFoundError(f'{directory!r} is not a Hugging Face model directory: '
                                'no config.json')
    with open(config_file) as f:
        config = json.load(f)
    for single, index in (('model.safetensors', 'model.safetensors.index.json'),
                          ('pytorch_model.bin', 'pytorch_model.bin.index.json')):
        if osp.isfile(osp.join(directory, single)):
            return load_state_dict_file(osp.join(directory, single)), config
        if osp.isfile(osp.join(directory, index)):
            with open(osp.join(directory, index)) as f:
                shards = sorted(set(json.load(f)['weight_map'].values()))
            state_dict: Dict[str, torch.Tensor] = {}
            for shard in shards:
                state_dict.update(load_state_dict_file(osp.join(directory, shard)))
            return state_dict, config
    raise FileNotFoundError(f'{directory!r}: no model.safetensors, pytorch_model.bin or '
                            'their sharded index')


def copy_tokenizer_files(src_dir: str, dst_dir: str) -> List[str]:
    """Copy the Hugging Face tokenizer files of ``src_dir`` (see :data:`TOKENIZER_FILES`)
    to ``dst_dir``. Returns the names copied (empty when there are none)."""
    names = [n for n in TOKENIZER_FILES if osp.isfile(osp.join(src_dir, n))]
    if names:
        os.makedirs(dst_dir, exist_ok=True)
        for name in names:
            shutil.copyfile(osp.join(src_dir, name), osp.join(dst_dir, name))
    return names


def save_mmengine_checkpoint(state_dict: Dict[str, torch.Tensor], path: str,
                             meta: Optional[dict] = None) -> None:
    """Write ``{'state_dict': ..., 'meta': ...}`` (MMEngine's layout, loadable with
    ``load_from`` / ``init_cfg=dict(type='Pretrained')``). Tensors are made contiguous
    float32 (or kept as they are when not floating point)."""
    tensors = {k: (v.float() if v.is_floating_point() else v).contiguous()
               for k, v in state_dict.items()}
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    torch.save({'state_dict': tensors, 'meta': dict(meta or {})}, path)
