# Copyright (c) cllip_mm contributors. All rights reserved.
"""Key prefixes of state dicts, stripped in one place: the ``module.`` prefix that DDP (and
MMEngine's model wrappers) put in front of every key, and a sub-module's own prefix
(``'prompter.'``, ``'visual.'``)."""
from typing import Dict, Mapping, TypeVar

#: The prefix of a wrapped model's keys (``DistributedDataParallel.module``).
WRAPPER_PREFIX = 'module.'

V = TypeVar('V')


def strip_prefix(key: str, prefix: str) -> str:
    """``key`` without a leading ``prefix`` (``str.removeprefix`` of Python 3.9); a key
    without it unchanged."""
    return key[len(prefix):] if key.startswith(prefix) else key


def strip_module_prefix(key: str) -> str:
    """``'module.image_encoder.proj'`` -> ``'image_encoder.proj'``; other keys unchanged
    (one leading prefix is removed)."""
    return strip_prefix(key, WRAPPER_PREFIX)


def strip_module_prefixes(state_dict: Mapping[str, V]) -> Dict[str, V]:
    """A new dict: every key through :func:`strip_module_prefix`, values and order kept."""
    return {strip_module_prefix(k): v for k, v in state_dict.items()}


def sub_state_dict(state_dict: Mapping[str, V], prefix: str) -> Dict[str, V]:
    """The entries whose keys start with ``prefix``, with it removed, in order:
    ``sub_state_dict(cloc_state, 'prompter.')`` is the ``Prompter``'s own state dict."""
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
