# Copyright (c) cllip_mm contributors. All rights reserved.
from .region_text_visualizer import DEFAULT_PALETTE, RegionTextVisualizer

__all__ = ['RegionTextVisualizer', 'DEFAULT_PALETTE']
