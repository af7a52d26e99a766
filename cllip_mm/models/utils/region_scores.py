# Copyright (c) cllip_mm contributors. All rights reserved.
"""Zero-shot scores of region embeddings against class embeddings, shared by
``CLOC.score_regions``, ``RegionInferencer.classify_regions`` and the mmdet
``ClocRegionClassifier``."""
from typing import NamedTuple, Union

import torch


class RegionScores(NamedTuple):
    """Scores of R regions against V classes.

    Attributes:
        similarity (Tensor): [..., R, V] cosine similarity (the inputs are L2-normalised).
        probs (Tensor): [..., R, V] ``softmax(scale * similarity)`` over the V classes.
    """
    similarity: torch.Tensor
    probs: torch.Tensor


def score_regions(region_embeds: torch.Tensor, class_embeds: torch.Tensor,
                  scale: Union[float, torch.Tensor]) -> RegionScores:
    """Cosine similarity and class probabilities of regions.

    Args:
        region_embeds (Tensor): [..., R, D] L2-normalised region embeddings.
        class_embeds (Tensor): [V, D] L2-normalised class (phrase) embeddings.
        scale (float | Tensor): The logit scale ``s`` (``exp`` of the learnt log scale;
            a 0-dim tensor or a float).

    Returns:
        RegionScores: ``similarity`` = ``region_embeds @ class_embeds.T`` and ``probs`` =
        ``softmax(s * similarity, -1)``, both [..., R, V].
    """
    similarity = region_embeds @ class_embeds.t()
    return RegionScores(similarity, (scale * similarity).softmax(-1))
