# Copyright (c) cllip_mm contributors. All rights reserved.
"""The ``module.`` prefix that DDP (and MMEngine's model wrappers) put in front of every
state-dict key, removed in one place for everything that reads checkpoints."""
from typing import Dict, Mapping, TypeVar

#: The prefix of a wrapped model's keys (``DistributedDataParallel.module``).
WRAPPER_PREFIX = 'module.'

V = TypeVar('V')


def strip_module_prefix(key: str) -> str:
    """``'module.image_encoder.proj'`` -> ``'image_encoder.proj'``; other keys unchanged
    (one leading prefix is removed)."""
    return key[len(WRAPPER_PREFIX):] if key.startswith(WRAPPER_PREFIX) else key


def strip_module_prefixes(state_dict: Mapping[str, V]) -> Dict[str, V]:
    """A new dict: every key through :func:`strip_module_prefix`, values and order kept."""
    return {strip_module_prefix(k): v for k, v in state_dict.items()}
