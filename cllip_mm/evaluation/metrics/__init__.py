# Copyright (c) cllip_mm contributors. All rights reserved.
from .grounding_metric import GroundingMetric
from .image_text_retrieval_metric import ImageTextRetrievalMetric
from .region_classification_metric import RegionClassificationMetric

__all__ = ['GroundingMetric', 'ImageTextRetrievalMetric', 'RegionClassificationMetric']
