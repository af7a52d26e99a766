# Copyright (c) cllip_mm contributors. All rights reserved.
"""Tiny random models and data for tests and benchmarks (built locally, nothing
downloaded)."""
from .vesl import (
                   make_tiny_blip,
                   make_tiny_owlv2,
                   make_tiny_tagger,
                   make_tiny_vesl_models,
                   make_vesl_images,
                   tiny_vesl_config,
)

__all__ = [
    'make_tiny_blip', 'make_tiny_owlv2', 'make_tiny_tagger', 'make_tiny_vesl_models',
    'make_vesl_images', 'tiny_vesl_config'
]
