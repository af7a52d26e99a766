# Copyright (c) cllip_mm contributors. All rights reserved.
"""Region-text records for the MLLM instruction set, read by the project's own reader.

:func:`load_region_records` goes through :class:`cllip_mm.datasets.RegionTextDataset`, so
the demo's JSON Lines files and ODVG files (grounding or detection records, detected per
file) are parsed, validated and converted by the same code as for CLOC's training; nothing
here reads JSON.
"""
from typing import List, NamedTuple, Optional

import numpy as np


class RegionRecord(NamedTuple):
    """One image and its regions.

    Attributes:
        img_path (str): Path of the image (``data_root`` / ``data_prefix`` applied).
        width (int): Image width in pixels (as the annotation records it).
        height (int): Image height in pixels.
        boxes (np.ndarray): float32 [N, 4] xyxy pixels of the image.
        phrases (list[str]): The N region phrases.
    """
    img_path: str
    width: int
    height: int
    boxes: np.ndarray
    phrases: List[str]

    def normalized_boxes(self) -> np.ndarray:
        """[N, 4] float64 xyxy in [0, 1] of the image (``x / width``, ``y / height``)."""
        scale = np.array([self.width, self.height, self.width, self.height], dtype=np.float64)
        return np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4) / scale


def records_from_dataset(dataset) -> List[RegionRecord]:
    """The records of a built :class:`~cllip_mm.datasets.RegionTextDataset` (its data
    infos: ``img_path``, ``width``, ``height``, ``gt_bboxes``, ``gt_phrases``)."""
    records = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        records.append(RegionRecord(info['img_path'], int(info['width']), int(info['height']),
                                    np.asarray(info['gt_bboxes'], dtype=np.float32).reshape(-1, 4),
                                    list(info['gt_phrases'])))
    return records


def load_region_records(ann_file: str,
                        data_root: str = '',
                        on_bad_record: str = 'raise',
                        check_image_exists: bool = True,
                        min_score: Optional[float] = None,
                        **dataset_kwargs) -> List[RegionRecord]:
    """Read a region-text JSON Lines file or an ODVG file.

    Args:
        ann_file (str): The annotation file (relative to ``data_root`` unless absolute).
        data_root (str): Root of the annotation file and the images.
        on_bad_record (str): ``'raise'`` or ``'skip'`` (see ``RegionTextDataset``).
        check_image_exists (bool): Check that every image file exists.
        min_score (float, optional): Drop regions whose score is below it.
        **dataset_kwargs: More ``RegionTextDataset`` arguments (``label_map_file`` and
            ``caption_policy`` for ODVG detection records, ``sample_images``...).

    Returns:
        list[RegionRecord]: In file order.
    """
    from cllip_mm.datasets import RegionTextDataset
    dataset = RegionTextDataset(ann_file=ann_file, data_root=data_root, pipeline=[],
                                test_mode=True, serialize_data=False,
                                on_bad_record=on_bad_record,
                                check_image_exists=check_image_exists, min_score=min_score,
                                **dataset_kwargs)
    return records_from_dataset(dataset)
