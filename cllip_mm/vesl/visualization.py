# Copyright (c) cllip_mm contributors. All rights reserved.
"""Draw VESL results (boxes and phrases) to PNG with MMEngine's Visualizer."""
import os
import os.path as osp
from typing import List, Sequence

import numpy as np

from .pipeline import ImageResult


def draw_samples(results: Sequence[ImageResult], out_dir: str) -> List[str]:
    """One PNG per result (``{key}.png``, caption as the title line); return paths."""
    import mmcv
    from mmengine.visualization import Visualizer
    os.makedirs(out_dir, exist_ok=True)
    vis = Visualizer(name=f'vesl_samples_{os.getpid()}')
    paths = []
    for result in results:
        image = np.asarray(result.image)
        vis.set_image(image)
        boxes = result.regions.bboxes
        if len(boxes):
            vis.draw_bboxes(boxes, edge_colors='lime', line_widths=2)
            labels = [f'{result.phrases[int(label)].text} {float(score):.2f}'
                      for label, score in zip(result.regions.labels, result.regions.scores)]
            vis.draw_texts(labels, boxes[:, :2].numpy(), colors='white', font_sizes=9,
                           bboxes=dict(facecolor='black', alpha=0.6, pad=1, edgecolor='none'))
        vis.draw_texts(result.caption[:120] or '(no caption)', np.array([2, 2]),
                       colors='yellow', font_sizes=9,
                       bboxes=dict(facecolor='black', alpha=0.6, pad=1, edgecolor='none'))
        path = osp.join(out_dir, f'{result.item.key}.png')
        mmcv.imwrite(vis.get_image()[..., ::-1], path)
        paths.append(path)
    return paths
