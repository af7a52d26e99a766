# Copyright (c) cllip_mm contributors. All rights reserved.
from .region_text import BadRecordError, RegionTextDataset, iter_json_lines
from .transforms import *  # noqa: F401,F403

__all__ = ['RegionTextDataset', 'BadRecordError', 'iter_json_lines']
