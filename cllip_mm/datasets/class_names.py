# Copyright (c) cllip_mm contributors. All rights reserved.
"""Moved to :mod:`cllip_mm.text.class_names` (below both the datasets and the models,
which read the prompt templates); re-exported here for existing imports."""
from cllip_mm.text.class_names import (  # noqa: F401
    COCO_CLASSES,
    IMAGENET_CLASSES,
    OPENAI_IMAGENET_TEMPLATES,
    TEMPLATE_SETS,
    get_templates,
    lvis_prompt_name,
)
