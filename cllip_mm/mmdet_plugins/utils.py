# Copyright (c) cllip_mm contributors. All rights reserved.
import torch.nn as nn

from cllip_mm.registry import MODELS as CLLIP_MODELS


def build_cllip_module(cfg: dict) -> nn.Module:
    """Build a cllip_mm model component (e.g. ``TextTransformer``, ``Prompter``) from
    inside an mmdet-scoped build.

    mmdet configs run with ``default_scope='mmdet'``, where cllip_mm's types are not
    visible; the build runs in the ``cllip_mm`` scope unless ``cfg`` names another
    ``_scope_``.
    """
    cfg = dict(cfg)
    cfg.setdefault('_scope_', 'cllip_mm')
    return CLLIP_MODELS.build(cfg)
