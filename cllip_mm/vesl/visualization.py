# Copyright (c) cllip_mm contributors. All rights reserved.
"""Draw VESL results (boxes and phrases) to PNG with MMEngine's Visualizer."""
import os
import os.path as osp
from typing import List, Sequence

import numpy as np

from .pipeline import ImageResult


def draw_samples(results: Sequence[ImageResult], out_dir: str, min_side: int = 512,
                 max_side: int = 1024) -> List[str]:
    """One PNG per result (``{key}.png``): boxes, ``phrase score`` labels and the
    caption on top. Images are rescaled so that their longer side lies in
    ``[min_side, max_side]`` (tiny images stay readable). Returns the paths."""
    import mmcv
    from mmengine.visualization import Visualizer
    os.makedirs(out_dir, exist_ok=True)
    vis = Visualizer(name=f'vesl_samples_{os.getpid()}')
    paths = []
    label_box = dict(facecolor='black', alpha=0.6, pad=1, edgecolor='none')
    for result in results:
        width, height = result.image.size
        scale = min(max_side / max(width, height), max(1.0, min_side / max(width, height)))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        vis.set_image(np.asarray(result.image.resize(size)))
        boxes = result.regions.bboxes * scale  # the drawing wants x < width, y < height
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, size[0] - 1)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, size[1] - 1)
        if len(boxes):
            vis.draw_bboxes(boxes, edge_colors='lime', line_widths=2)
            labels = [f'{result.phrases[int(label)].text} {float(score):.2f}'
                      for label, score in zip(result.regions.labels, result.regions.scores)]
            vis.draw_texts(labels, boxes[:, :2].numpy() + 2, colors='white', font_sizes=10,
                           bboxes=label_box)
        vis.draw_texts(result.caption[:100] or '(no caption)', np.array([2, 2]),
                       colors='yellow', font_sizes=10, bboxes=label_box)
        path = osp.join(out_dir, f'{result.item.key}.png')
        mmcv.imwrite(vis.get_image()[..., ::-1], path)
        paths.append(path)
    return paths
