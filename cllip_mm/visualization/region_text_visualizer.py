# Copyright (c) cllip_mm contributors. All rights reserved.
"""Drawing region-text data samples: boxes with their phrases / labels and scores, and
region-text similarity heat maps, with MMEngine's :class:`Visualizer` primitives."""
from typing import List, Optional, Sequence, Tuple

import mmcv
import numpy as np
import torch
from mmengine.dist import master_only
from mmengine.structures import InstanceData
from mmengine.visualization import Visualizer

from cllip_mm.registry import VISUALIZERS

#: Box colours (RGB), assigned per distinct text in order of first appearance: the
#: 10 Tableau colours, readable on light and dark backgrounds.
DEFAULT_PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


@VISUALIZERS.register_module()
class RegionTextVisualizer(Visualizer):
    """Draws what a :class:`~cllip_mm.structures.RegionTextDataSample` holds.

    - ``gt_regions`` (``bboxes`` xyxy pixels of the drawn image, ``phrases``): solid
      boxes, labelled with the phrase (``browse_dataset.py``).
    - ``pred_regions`` (``bboxes``, ``scores`` and a text per box: ``label_names``
      (region classification) or ``phrases`` (grounding)): boxes labelled
      ``"text score"``; boxes with a score below ``pred_score_thr`` are skipped.
    - ``pred_similarity`` (a ``PixelData`` with ``maps`` [T, H, W] and metainfo
      ``texts``): map ``heatmap_index`` blended over the image with
      :meth:`Visualizer.draw_featmap` (min-max normalised, jet), titled with its text.

    A text keeps its colour in one picture (one colour per distinct text, from
    ``palette``). Images smaller than ``min_size`` (short side) are enlarged before
    drawing, with all geometry scaled alike, so that labels stay legible on small
    inputs.

    Args:
        name (str): Instance name (MMEngine's ``ManagerMixin``).
        palette (sequence[tuple]): RGB colours.
        line_width (float): Box line width in pixels.
        alpha (float): Box line opacity.
        font_size (int, optional): Label font size; default scales with the image.
        heatmap_alpha (float): Opacity of the heat map.
        min_size (int): Enlarge images whose short side is smaller (0: never).
        **kwargs: Passed to :class:`Visualizer` (``vis_backends``, ``save_dir``...).
    """

    def __init__(self,
                 name: str = 'visualizer',
                 palette: Sequence[Tuple[int, int, int]] = DEFAULT_PALETTE,
                 line_width: float = 2,
                 alpha: float = 1.0,
                 font_size: Optional[int] = None,
                 heatmap_alpha: float = 0.5,
                 min_size: int = 0,
                 **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        if not palette:
            raise ValueError('palette must hold at least one colour')
        self.palette = [tuple(int(c) for c in colour) for colour in palette]
        self.line_width = line_width
        self.alpha = alpha
        self.font_size = font_size
        self.heatmap_alpha = heatmap_alpha
        self.min_size = min_size

    # ------------------------------------------------------------------ helpers
    def display_scale(self, image_hw: Sequence[int]) -> float:
        """The factor images of size ``image_hw`` are enlarged by before drawing."""
        short = min(image_hw)
        return max(1.0, self.min_size / short) if self.min_size else 1.0

    def colour_of(self, text: str, seen: List[str]) -> Tuple[int, int, int]:
        """The colour of ``text``; ``seen`` (the texts drawn so far) is extended."""
        if text not in seen:
            seen.append(text)
        return self.palette[seen.index(text) % len(self.palette)]

    def _font_size(self) -> int:
        if self.font_size:
            return self.font_size
        h, w = self.height, self.width
        return int(np.clip(min(h, w) / 22, 8, 20))

    def draw_labelled_boxes(self, bboxes: np.ndarray, texts: Sequence[str],
                            colours: Sequence[Tuple[int, int, int]]) -> None:
        """Draw boxes [N, 4] (xyxy pixels of the current image) with a label each,
        on a filled tag of the box's colour above its top-left corner (inside the image)."""
        if len(bboxes) == 0:
            return
        bboxes = np.asarray(bboxes, dtype=np.float32).reshape(-1, 4)
        self.draw_bboxes(bboxes, edge_colors=list(colours), alpha=self.alpha,
                         line_widths=self.line_width)
        font = self._font_size()
        em = font * self.dpi / 72  # font sizes are in points
        positions = bboxes[:, :2].copy()
        positions[:, 1] = np.maximum(positions[:, 1] - 1.3 * em, 0)
        # keep each label inside the picture (a DejaVu Sans character is ~0.6 em wide)
        widths = np.array([0.62 * em * len(t) + 4 for t in texts], np.float32)
        positions[:, 0] = np.clip(positions[:, 0], 0, np.maximum(self.width - widths, 0))
        self.draw_texts(list(texts), positions, font_sizes=font, colors='white',
                        vertical_alignments='top',
                        bboxes=[dict(facecolor=np.array(c) / 255., alpha=0.8, pad=0.7,
                                     edgecolor='none') for c in colours])

    # ------------------------------------------------------------------ main entry
    @master_only
    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample=None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       pred_score_thr: float = 0.,
                       heatmap_index: int = 0,
                       step: int = 0) -> np.ndarray:
        """Draw ``data_sample`` on ``image`` and show / save / log the result.

        Args:
            name (str): Image identifier (for the vis backends).
            image (ndarray): RGB uint8 [H, W, 3], the frame the sample's boxes are in.
            data_sample (RegionTextDataSample, optional): What to draw.
            draw_gt, draw_pred (bool): Draw ``gt_regions`` / the predictions.
            show (bool): Show in a window.
            wait_time (float): Seconds to show it.
            out_file (str, optional): Write the picture here (PNG / JPEG) instead of
                adding it to the vis backends.
            pred_score_thr (float): Skip predicted boxes scoring below it.
            heatmap_index (int): Which of the sample's similarity maps to draw.
            step (int): Global step (for the backends).

        Returns:
            ndarray: The drawn RGB image.
        """
        image = np.ascontiguousarray(image).clip(0, 255).astype(np.uint8)
        h, w = image.shape[:2]
        factor = self.display_scale((h, w))
        if factor != 1.0:
            image = mmcv.imresize(image, (int(round(w * factor)), int(round(h * factor))),
                                  interpolation='bilinear')
        # xyxy scale from the sample's frame to the drawn image
        scale = np.array([image.shape[1] / w, image.shape[0] / h] * 2, np.float32)
        self.set_image(image)
        seen: List[str] = []
        if data_sample is not None:
            if draw_pred and 'pred_similarity' in data_sample:
                self._draw_heatmap(data_sample.pred_similarity, heatmap_index)
            if draw_gt and 'gt_regions' in data_sample:
                gt = data_sample.gt_regions
                phrases = list(gt.phrases) if 'phrases' in gt else [''] * len(gt)
                self.draw_labelled_boxes(_numpy(gt.bboxes) * scale, phrases,
                                         [self.colour_of(p, seen) for p in phrases])
            if draw_pred and 'pred_regions' in data_sample:
                self._draw_pred_regions(data_sample.pred_regions, scale, pred_score_thr, seen)
        drawn = self.get_image()
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(drawn[..., ::-1], out_file)
        else:
            self.add_image(name, drawn, step)
        return drawn

    def _draw_pred_regions(self, pred: InstanceData, scale: np.ndarray, score_thr: float,
                           seen: List[str]) -> None:
        if 'bboxes' not in pred or len(pred) == 0:
            return
        if 'label_names' in pred:
            texts = list(pred.label_names)
        elif 'phrases' in pred:
            texts = list(pred.phrases)
        else:
            texts = [''] * len(pred)
        if 'scores' in pred:
            scores = _numpy(pred.scores)
            keep = scores >= score_thr
            labels = [f'{t} {s:.2f}'.strip() for t, s in zip(texts, scores)]
        else:
            keep, labels = np.ones(len(pred), bool), texts
        self.draw_labelled_boxes(_numpy(pred.bboxes)[keep] * scale,
                                 [lab for lab, k in zip(labels, keep) if k],
                                 [self.colour_of(t, seen) for t, k in zip(texts, keep) if k])

    def _draw_heatmap(self, similarity, index: int) -> None:
        maps = similarity.maps
        if not 0 <= index < len(maps):
            raise IndexError(f'heatmap_index {index} out of range for {len(maps)} maps')
        heat = torch.as_tensor(maps[index:index + 1]).float()
        if tuple(heat.shape[-2:]) != (self.height, self.width):
            heat = torch.nn.functional.interpolate(
                heat[None], (self.height, self.width), mode='bilinear', align_corners=False)[0]
        blended = self.draw_featmap(heat, self.get_image(), channel_reduction=None, topk=0,
                                    alpha=self.heatmap_alpha)
        self.set_image(blended)
        texts = similarity.metainfo.get('texts')
        if texts:
            font = self._font_size()
            self.draw_texts(f'"{texts[index]}"', np.array([2., 2.]), font_sizes=font,
                            colors='white', vertical_alignments='top',
                            bboxes=[dict(facecolor='black', alpha=0.6, pad=0.7,
                                         edgecolor='none')])


def _numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)
