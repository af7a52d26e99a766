# Copyright (c) cllip_mm contributors. All rights reserved.
"""Open-vocabulary detectors: (image, phrases) -> boxes (VESL stage 3).

``detector(images, phrases) -> list[InstanceData]`` with, per image, ``bboxes``
float32 [N, 4] xyxy in absolute pixels of the input image (clipped to it),
``scores`` float32 [N] in [0, 1] and ``labels`` int64 [N], the index of the box's
phrase in ``phrases[i]``. Images without phrases get no boxes (the model is not run
for them).
"""
import os.path as osp
from typing import List, Sequence

import torch
from mmengine.structures import InstanceData

from cllip_mm.registry import VESL_STAGES
from .utils import dtype_kwarg, get_device, get_dtype


def empty_regions() -> InstanceData:
    return InstanceData(bboxes=torch.zeros(0, 4), scores=torch.zeros(0),
                        labels=torch.zeros(0, dtype=torch.long))


@VESL_STAGES.register_module()
class OWLv2Detector:
    """OWLv2 (transformers ``Owlv2ForObjectDetection`` + ``Owlv2Processor``) from a
    local directory; each image is queried with its own phrases, in one batched call.

    Every predicted box (one per patch of the OWLv2 grid) gets the phrase of highest
    sigmoid logit among *that image's* phrases, as OWL-ViT's post-processing does;
    the queries the processor adds to pad the batch to the same number per image are
    masked out here. OWLv2 pads images to a square (bottom / right) before resizing,
    so its normalised boxes are scaled by ``max(width, height)`` and clipped to the
    image. Thresholds, NMS and caps are the job of the filters.

    Args:
        model_path (str): The local checkpoint directory (model + processor files).
        query_template (str): Query text of a phrase, e.g. ``'a photo of a {}'``.
        device (str): ``'cpu'``, ``'cuda[:i]'`` or ``'auto'``.
        dtype (str): ``'float32'``, ``'bfloat16'`` or ``'float16'``.
    """

    name = 'detect'

    def __init__(self, model_path: str, query_template: str = '{}', device: str = 'cpu',
                 dtype: str = 'float32') -> None:
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
        outputs = self.model(**inputs)
        logits = outputs.logits.float()            # [B, P, Qmax]
        boxes = outputs.pred_boxes.float()         # [B, P, 4] cxcywh of the padded square
        for b, i in enumerate(todo):
            probs = logits[b, :, :len(phrases[i])].sigmoid()
            scores, labels = probs.max(dim=-1)
            width, height = images[i].size
            side = float(max(width, height))
            cx, cy, w, h = boxes[b].unbind(-1)
            xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * side
            xyxy[:, 0::2] = xyxy[:, 0::2].clamp(0, width)
            xyxy[:, 1::2] = xyxy[:, 1::2].clamp(0, height)
            results[i] = InstanceData(bboxes=xyxy.cpu(), scores=scores.cpu(),
                                      labels=labels.cpu())
        return results
