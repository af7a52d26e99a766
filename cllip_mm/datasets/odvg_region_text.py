# Copyright (c) cllip_mm contributors. All rights reserved.
"""Region-caption pairs of an ODVG grounding file (GRIT, GoldG as mmdet writes them)."""
from typing import Any, Optional

from cllip_mm.registry import DATASETS
from .region_text import RegionTextDataset


@DATASETS.register_module()
class ODVGRegionTextDataset(RegionTextDataset):
    """mmdet's ODVG grounding JSON Lines as region-text records.

    A line ``{"filename": "x.jpg", "height": h, "width": w, "grounding": {"caption":
    "...", "regions": [{"bbox": [x1, y1, x2, y2], "phrase": "a dog", ...}]}}`` (``bbox``
    may also be a list of boxes for one phrase) becomes the record of
    :class:`RegionTextDataset` (``image``, ``caption``, one region per box), so it is
    validated the same way (errors name the file, line and field) and supports
    ``sample_images`` (the paper's 2K GRIT images). Arguments are those of
    :class:`RegionTextDataset`.
    """

    def parse_data_info(self, raw_data_info: Any, line_no: int = 0) -> Optional[dict]:
        if isinstance(raw_data_info, dict) and 'filename' in raw_data_info:
            grounding = raw_data_info.get('grounding')
            if not isinstance(grounding, dict):
                grounding = {}
            regions = grounding.get('regions', [])
            if isinstance(regions, list):  # else RegionTextDataset reports the type
                flat = []
                for region in regions:
                    boxes = region.get('bbox') if isinstance(region, dict) else None
                    if isinstance(boxes, list) and boxes and isinstance(boxes[0], list):
                        flat += [dict(region, bbox=box) for box in boxes]
                    else:
                        flat.append(region)
                regions = flat
            raw_data_info = dict(
                image=raw_data_info['filename'], width=raw_data_info.get('width'),
                height=raw_data_info.get('height'), caption=grounding.get('caption', ''),
                regions=regions)
        return super().parse_data_info(raw_data_info, line_no)
