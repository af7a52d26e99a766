# Copyright (c) cllip_mm contributors. All rights reserved.
"""VESL: pseudo-label images with region-text records (captioner -> noun phrases ->
open-vocabulary detector -> filters), as the CLOC paper makes its training data.

Stages are registered in :data:`cllip_mm.registry.VESL_STAGES`; the heavy libraries
(transformers, nltk) are imported only when a stage is built. See ``docs/vesl.md``.
"""
from .captioners import ExistingCaptions, HFCaptioner
from .detectors import OWLv2Detector
from .filters import CrossPhraseNMS, MaxRegions, MinBoxSize, PerPhraseNMS, ScoreThreshold
from .phrase_extractors import NLTKPhraseExtractor, Phrase
from .pipeline import VESLPipeline
from .runner import VESLRunner
from .sources import InputItem, InputShard, iter_shard, plan_shards

__all__ = [
    'CrossPhraseNMS', 'ExistingCaptions', 'HFCaptioner', 'InputItem', 'InputShard',
    'MaxRegions', 'MinBoxSize', 'NLTKPhraseExtractor', 'OWLv2Detector', 'PerPhraseNMS',
    'Phrase', 'ScoreThreshold', 'VESLPipeline', 'VESLRunner', 'iter_shard', 'plan_shards'
]
