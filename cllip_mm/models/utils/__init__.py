# Copyright (c) cllip_mm contributors. All rights reserved.
from .class_embeddings import ClassEmbeddingCacheMixin, ensemble_class_embeddings
from .logit_scale import INIT_LOGIT_SCALE, LOGIT_SCALE_CAP, MAX_LOGIT_SCALE
from .region_scores import RegionScores, score_regions
from .state_dict import strip_module_prefix, strip_module_prefixes, strip_prefix, sub_state_dict

__all__ = ['ClassEmbeddingCacheMixin', 'ensemble_class_embeddings', 'INIT_LOGIT_SCALE',
           'LOGIT_SCALE_CAP', 'MAX_LOGIT_SCALE', 'RegionScores', 'score_regions',
           'strip_module_prefix', 'strip_module_prefixes', 'strip_prefix', 'sub_state_dict']
