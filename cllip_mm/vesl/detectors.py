# Copyright (c) cllip_mm contributors. All rights reserved.
"""Open-vocabulary detectors: (image, phrases) -> boxes (VESL stage 3).

``detector(images, phrases) -> list[InstanceData]`` with, per image, ``bboxes``
float32 [N, 4] xyxy in absolute pixels of the input image (clipped to it),
``scores`` float32 [N] in [0, 1] and ``labels`` int64 [N], the index of the box's
phrase in ``phrases[i]``. Images without phrases get no boxes (the model is not run
for them).
"""
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine.structures import InstanceData

from cllip_mm.registry import VESL_STAGES
from .utils import dtype_kwarg, get_device, get_dtype


def empty_regions() -> InstanceData:
    return InstanceData(bboxes=torch.zeros(0, 4), scores=torch.zeros(0),
                        labels=torch.zeros(0, dtype=torch.long))


def label_boxes(probs: torch.Tensor, num_phrases: int,
                score_thr: Optional[float] = None) -> Tuple[torch.Tensor, torch.Tensor,
                                                            torch.Tensor]:
    """The box labelling rule: each box gets its single most confident phrase.

    Args:
        probs (Tensor): [N, Q] confidence of each box (row) for each query
            (column); only the first ``num_phrases`` columns are the image's
            phrases (the rest pad a batch and are ignored).
        num_phrases (int): The image's number of phrases.
        score_thr (float, optional): Keep a box when its best confidence is
            *above* it (the paper: 0.1, App. C.1); None keeps every box.

    Returns:
        tuple: ``keep`` (int64 [K], indices of the kept boxes, in box order),
        ``scores`` (float [K]) and ``labels`` (int64 [K], the phrase index).
    """
    scores, labels = probs[:, :num_phrases].max(dim=-1)
    if score_thr is None:
        keep = torch.arange(len(scores), device=scores.device)
    else:
        keep = (scores > score_thr).nonzero().flatten()
    return keep, scores[keep], labels[keep]


@VESL_STAGES.register_module()
class OWLv2Detector:
    """OWLv2 (transformers ``Owlv2ForObjectDetection`` + ``Owlv2Processor``) from a
    local directory; each image is queried with its own phrases, in one batched call.

    Every predicted box (one per patch of the OWLv2 grid) gets the phrase of highest
    sigmoid logit among *that image's* phrases, as OWL-ViT's post-processing does;
    the queries the processor adds to pad the batch to the same number per image are
    masked out here. OWLv2 pads images to a square (bottom / right) before resizing,
    so its normalised boxes are scaled by ``max(width, height)`` and clipped to the
    image. NMS and caps are the job of the filters; a confidence threshold is
    either a filter (``ScoreThreshold``) or ``score_thr`` here (:func:`label_boxes`:
    kept when the box's best confidence is above it, as the paper does).

    Args:
        model_path (str): The local checkpoint directory (model + processor files).
        query_template (str): Query text of a phrase, e.g. ``'a photo of a {}'``.
        score_thr (float, optional): Keep boxes whose best confidence is above it
            (the paper: 0.1); None keeps every box (one per patch).
        image_size (int, optional): Side of the square the image is resized to
            (the paper: 448); None uses the processor's (960 for the public B/16,
            1008 for L/14). Position embeddings are interpolated when it differs
            from the checkpoint's.
        device (str): ``'cpu'``, ``'cuda[:i]'`` or ``'auto'``.
        dtype (str): ``'float32'``, ``'bfloat16'`` or ``'float16'``.
    """

    name = 'detect'

    def __init__(self, model_path: str, query_template: str = '{}',
                 score_thr: Optional[float] = None, image_size: Optional[int] = None,
                 device: str = 'cpu', dtype: str = 'float32') -> None:
        from transformers import Owlv2ForObjectDetection, Owlv2Processor
        if not osp.isdir(model_path):
            raise FileNotFoundError(
                f'OWLv2Detector: model_path {model_path!r} is not a directory (download the '
                'checkpoint first, see docs/vesl.md)')
        if '{}' not in query_template:
            raise ValueError(f"query_template must contain '{{}}', got {query_template!r}")
        self.device, self.dtype = get_device(device), get_dtype(dtype)
        self.query_template = query_template
        self.processor = Owlv2Processor.from_pretrained(model_path, local_files_only=True)
        self.model = Owlv2ForObjectDetection.from_pretrained(
            model_path, local_files_only=True, **dtype_kwarg(self.dtype)).to(self.device).eval()
        self.max_text_len = self.model.config.text_config.max_position_embeddings
        self.score_thr = score_thr
        self.model_kwargs = {}
        if image_size is not None:
            if image_size % self.model.config.vision_config.patch_size:
                raise ValueError(f'image_size {image_size} is not a multiple of the patch size '
                                 f'{self.model.config.vision_config.patch_size}')
            self.processor.image_processor.size = dict(height=image_size, width=image_size)
            if image_size != self.model.config.vision_config.image_size:
                self.model_kwargs['interpolate_pos_encoding'] = True

    @torch.no_grad()
    def __call__(self, images: Sequence, phrases: Sequence[Sequence[str]]) -> List[InstanceData]:
        results = [empty_regions() for _ in images]
        todo = [i for i, p in enumerate(phrases) if len(p) > 0]
        if not todo:
            return results
        texts = [[self.query_template.format(p) for p in phrases[i]] for i in todo]
        inputs = self.processor(text=texts, images=[images[i] for i in todo],
                                return_tensors='pt', truncation=True,
                                max_length=self.max_text_len)
        inputs = {k: v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device)
                  for k, v in inputs.items()}
        outputs = self.model(**inputs, **self.model_kwargs)
        logits = outputs.logits.float()            # [B, P, Qmax]
        boxes = outputs.pred_boxes.float()         # [B, P, 4] cxcywh of the padded square
        for b, i in enumerate(todo):
            keep, scores, labels = label_boxes(logits[b].sigmoid(), len(phrases[i]),
                                               self.score_thr)
            width, height = images[i].size
            side = float(max(width, height))
            cx, cy, w, h = boxes[b, keep].unbind(-1)
            xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * side
            xyxy[:, 0::2] = xyxy[:, 0::2].clamp(0, width)
            xyxy[:, 1::2] = xyxy[:, 1::2].clamp(0, height)
            results[i] = InstanceData(bboxes=xyxy.cpu(), scores=scores.cpu(),
                                      labels=labels.cpu())
        return results
