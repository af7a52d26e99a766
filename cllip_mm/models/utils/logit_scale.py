# Copyright (c) cllip_mm contributors. All rights reserved.
"""The cap on the scale of contrastive logits, one value for the whole package.

The logits of the image-text and region-text losses are ``s * cos(x, y)`` with
``s = exp(logit_scale)`` learnt; as in CLIP (Radford et al., 2021, section 2.5) ``s`` is
clamped at 100 "to prevent scaling the logits by more than 100". The losses clamp the
log scale at :data:`MAX_LOGIT_SCALE`; the models that score regions for inference
(``CLOC.region_logit_scale``, the mmdet region classifier's converted ``logit_scale``)
apply the same cap. Both losses start from CLIP's temperature 0.07
(:data:`INIT_LOGIT_SCALE`).
"""
import math

#: Largest scale ``s`` of the logits ``s * cos(x, y)``.
LOGIT_SCALE_CAP = 100.
#: Its log: the upper clamp of a learnt log scale (the losses' ``max_logit_scale``).
MAX_LOGIT_SCALE = math.log(LOGIT_SCALE_CAP)
#: The initial log scale of the losses: ``log(1 / 0.07)``, CLIP's initial temperature 0.07.
INIT_LOGIT_SCALE = math.log(1 / 0.07)
