# Copyright (c) cllip_mm contributors. All rights reserved.
"""CLOC encoders as MMDetection components (registered in mmdet's registries).

Load them in an mmdet config with::

    custom_imports = dict(imports=['cllip_mm.mmdet_plugins'], allow_failed_imports=False)

- :class:`ClocViT`: backbone with a ViTDet-style simple feature pyramid.
- :class:`ClocTextModel`: language model with the interface of mmdet's ``BertModel``.
- :class:`ClocRegionClassifier`: zero-shot open-vocabulary region classification
  with the Prompter (optionally fused with a detector's scores, F-VLM style).
- :class:`ClocLayerDecayOptimWrapperConstructor`: ViT layer-wise LR decay.

A pretraining checkpoint gets these modules' names with
:func:`cllip_mm.models.converters.convert_cllip_state_dict`
(``tools/model_converters/cllip_to_mmdet.py``).
"""
from .cloc_text_model import ClocTextModel
from .cloc_vit import ClocViT, LayerNorm2d
from .layer_decay_constructor import ClocLayerDecayOptimWrapperConstructor, get_vit_layer_id
from .region_classifier import ClocRegionClassifier

__all__ = [
    'ClocViT', 'LayerNorm2d', 'ClocTextModel', 'ClocRegionClassifier',
    'ClocLayerDecayOptimWrapperConstructor', 'get_vit_layer_id'
]
