# Copyright (c) cllip_mm contributors. All rights reserved.
"""Small helpers shared by the VESL stages: device / dtype parsing."""
from typing import Union

import torch

DTYPES = dict(float32=torch.float32, fp32=torch.float32, float16=torch.float16,
              fp16=torch.float16, bfloat16=torch.bfloat16, bf16=torch.bfloat16)


def get_dtype(dtype: Union[str, torch.dtype]) -> torch.dtype:
    """``'float32'``, ``'bfloat16'`` (``'bf16'``), ``'float16'`` (``'fp16'``) or a dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f'dtype must be one of {sorted(DTYPES)}, got {dtype!r}')
    return DTYPES[dtype]


def get_device(device: str) -> torch.device:
    """``'cpu'``, ``'cuda'``, ``'cuda:1'``; ``'auto'`` picks CUDA when available."""
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError(f'device {device} requested but CUDA is not available')
    return device


def dtype_kwarg(dtype: torch.dtype) -> dict:
    """The dtype argument of transformers' ``from_pretrained``: ``dtype`` since
    4.56 (``torch_dtype`` is deprecated there), ``torch_dtype`` before."""
    import transformers
    from packaging.version import parse
    name = 'dtype' if parse(transformers.__version__) >= parse('4.56') else 'torch_dtype'
    return {name: dtype}
