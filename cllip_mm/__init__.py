# Copyright (c) cllip_mm contributors. All rights reserved.
"""cllip_mm: CLOC (Contrastive Localized Language-Image Pre-training) on OpenMMLab.

Importing the package is light on purpose: it only allow-lists MMEngine's pickled
types for ``torch.load(weights_only=True)`` so that ``resume=True`` works on
torch>=2.6. Components are registered by :func:`cllip_mm.utils.register_all_modules`
or lazily through the registries' ``locations``.
"""
from .utils.checkpoint import register_checkpoint_safe_globals
from .version import __version__, version_info

register_checkpoint_safe_globals()

__all__ = ['__version__', 'version_info']
