# Copyright (c) cllip_mm contributors. All rights reserved.
from .grounding_metric import GroundingMetric
from .image_text_retrieval_metric import ImageTextRetrievalMetric, RegionRetrievalMetric
from .region_classification_metric import ImageClassificationMetric, RegionClassificationMetric

__all__ = [
    'GroundingMetric', 'ImageTextRetrievalMetric', 'RegionRetrievalMetric',
    'RegionClassificationMetric', 'ImageClassificationMetric'
]
