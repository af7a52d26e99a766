# Copyright (c) cllip_mm contributors. All rights reserved.
"""Zero-shot open-vocabulary region classification with the CLOC Prompter."""
import copy
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList, SampleList
from mmdet.structures.bbox import get_box_tensor, scale_boxes
from mmengine.structures import InstanceData
from torch import Tensor

from cllip_mm.models.backbones import ViTOutput
from cllip_mm.models.layers import batched_nms
from cllip_mm.models.utils import (
    MAX_LOGIT_SCALE,
    ClassEmbeddingCacheMixin,
    ensemble_class_embeddings,
    score_regions,
)
from cllip_mm.structures import pad_boxes
from .utils import build_cllip_module

BOX_SOURCES = ('gt', 'proposals', 'detector')


@MODELS.register_module()
class ClocRegionClassifier(ClassEmbeddingCacheMixin, BaseDetector):
    """Class-agnostic boxes + class names -> open-vocabulary detections (no training).

    Each box is turned into a region embedding by the CLOC Prompter on the image
    encoder's patch tokens and scored against the text embeddings of the class names:
    ``p_vlm = softmax(exp(logit_scale) * region . text)`` over the classes. With a box
    score (proposals, a detector) and ``score_fusion``, the scores are fused as in
    F-VLM (Kuo et al., 2023): ``s = s_det ** (1 - w_c) * p_vlm ** w_c`` with
    ``w_c = base_weight`` for the classes in ``base_classes`` and ``novel_weight``
    for the others. Every (box, class) pair is a candidate detection; the best
    ``max_per_img`` above ``score_thr`` are kept (optionally after class-wise NMS).

    Boxes come from ``box_source``:

    - ``'gt'``: ``data_sample.gt_instances.bboxes`` (the region classification
      protocol of docs/method.md, section 7; load the annotations *before* ``Resize`` so that
      they are in the network-input frame);
    - ``'proposals'``: ``data_sample.proposals`` (``bboxes``, ``scores``), as mmdet's
      ``LoadProposals`` + ``ProposalBroadcaster`` give them (network-input frame);
    - ``'detector'``: the predictions of ``detector`` (any mmdet detector config,
      e.g. a class-agnostic RPN / Faster R-CNN trained on the base classes), run on
      the same inputs with ``rescale=False``.

    Class names are the data sample's ``text`` (mmdet datasets with
    ``return_classes=True``; add ``'text'`` to ``PackDetInputs.meta_keys``), else
    ``class_names``. Each name is embedded with every template of
    ``prompt_templates``; the normalised mean is the class embedding.

    The converted checkpoint (``tools/model_converters/cllip_to_mmdet.py``) holds
    ``backbone.vit.*``, ``prompter.*``, ``language_model.*`` and ``logit_scale`` (the
    region-text temperature of pretraining), so ``tools/test.py CONFIG CKPT`` runs it.

    Args:
        backbone (dict): A :class:`ClocViT` config (its pyramid is not used; give
            ``out_strides=(patch_size,)``).
        prompter (dict): The cllip_mm ``Prompter`` config.
        language_model (dict): A :class:`ClocTextModel` config (``embed_texts``).
        box_source (str): 'gt', 'proposals' or 'detector'.
        detector (dict, optional): The box detector for ``box_source='detector'``.
        class_names (Sequence[str], optional): Used when samples carry no ``text``.
        prompt_templates (Sequence[str]): E.g. ``('a photo of a {}.',)``.
        logit_scale (float): Log of the softmax scale (overwritten by checkpoints).
            Defaults to :data:`~cllip_mm.models.utils.MAX_LOGIT_SCALE` (log 100).
        score_fusion (dict, optional): ``base_weight`` (0.35), ``novel_weight``
            (0.65) and ``base_classes`` (names; None: every class is novel).
            None uses ``p_vlm`` alone.
        test_cfg (dict, optional): ``max_per_img`` (100), ``score_thr`` (0.0) and
            ``nms`` (e.g. ``dict(type='nms', iou_threshold=0.5)``; None: no NMS).
        data_preprocessor (dict, optional): ``DetDataPreprocessor`` with CLIP's mean /
            std and ``pad_size_divisor`` a multiple of the patch size.
    """

    def __init__(self,
                 backbone: dict,
                 prompter: dict,
                 language_model: dict,
                 box_source: str = 'proposals',
                 detector: Optional[dict] = None,
                 class_names: Optional[Sequence[str]] = None,
                 prompt_templates: Sequence[str] = ('{}',),
                 logit_scale: float = MAX_LOGIT_SCALE,
                 score_fusion: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if box_source not in BOX_SOURCES:
            raise ValueError(f'box_source must be one of {BOX_SOURCES}, got {box_source!r}')
        if (box_source == 'detector') != (detector is not None):
            raise ValueError("give `detector` exactly when box_source='detector'")
        if not prompt_templates or any('{}' not in t for t in prompt_templates):
            raise ValueError(f'every prompt template needs a "{{}}", got {prompt_templates}')
        self.backbone = MODELS.build(backbone)
        self.prompter = build_cllip_module(prompter)
        self.language_model = MODELS.build(language_model)
        self.detector = MODELS.build(detector) if detector is not None else None
        self.box_source = box_source
        self.class_names = tuple(class_names) if class_names else None
        self.prompt_templates = tuple(prompt_templates)
        self.register_buffer('logit_scale', torch.tensor(float(logit_scale)))
        fusion = dict(base_weight=0.35, novel_weight=0.65, base_classes=None)
        if score_fusion is not None:
            unknown = set(score_fusion) - set(fusion)
            if unknown:
                raise ValueError(f'unknown score_fusion keys {sorted(unknown)}')
            fusion.update(score_fusion)
        self.score_fusion = fusion if score_fusion is not None else None
        self.test_cfg = dict(max_per_img=100, score_thr=0.0, nms=None)
        self.test_cfg.update(test_cfg or {})

    # ------------------------------------------------------------------ pieces
    def extract_feat(self, batch_inputs: Tensor) -> ViTOutput:
        """[B, 3, H, W] -> the image encoder's output (``patch_tokens`` and
        ``patch_embeds`` [B, C, H/p, W/p] feed the Prompter)."""
        return self.backbone.encode(batch_inputs)

    def class_embeddings(self, names: Sequence[str]) -> Tensor:
        """L2-normalised [C, D] embeddings of class names (template ensemble), cached
        until the next ``train()`` or state-dict load."""
        return self.cached_class_embeddings(
            tuple(names), lambda: ensemble_class_embeddings(
                self.language_model.embed_texts, names, self.prompt_templates))

    def _class_names_of(self, sample) -> Tuple[str, ...]:
        text = sample.get('text', None)
        if isinstance(text, (list, tuple)) and text:
            return tuple(text)
        if self.class_names:
            return self.class_names
        raise ValueError(
            f'{type(self).__name__}: no class names: give `class_names`, or use a dataset '
            "with return_classes=True and 'text' in PackDetInputs.meta_keys")

    def get_boxes(self, batch_inputs: Tensor,
                  batch_data_samples: SampleList) -> Tuple[List[Tensor], List[Optional[Tensor]]]:
        """Boxes [K_i, 4] (xyxy, network-input pixels) and their scores [K_i] (None
        for ground truth) of each image."""
        if self.box_source == 'gt':
            return ([get_box_tensor(s.gt_instances.bboxes).float() for s in batch_data_samples],
                    [None] * len(batch_data_samples))
        if self.box_source == 'proposals':
            for s in batch_data_samples:
                if 'proposals' not in s:
                    raise ValueError("box_source='proposals' needs `proposals` in the data "
                                     'samples: add LoadProposals to the pipeline and a '
                                     'proposal_file to the dataset')
            return ([get_box_tensor(s.proposals.bboxes).float() for s in batch_data_samples],
                    [s.proposals.scores.float() for s in batch_data_samples])
        results = self.detector.predict(batch_inputs, copy.deepcopy(batch_data_samples),
                                        rescale=False)
        preds = [r.pred_instances if hasattr(r, 'pred_instances') else r for r in results]
        return ([get_box_tensor(p.bboxes).float() for p in preds],
                [p.scores.float() for p in preds])

    def fuse_scores(self, probs: Tensor, det_scores: Optional[Tensor],
                    names: Sequence[str]) -> Tensor:
        """probs [K, C], det_scores [K] -> F-VLM geometric mean [K, C]."""
        if det_scores is None or self.score_fusion is None:
            return probs
        base = set(self.score_fusion['base_classes'] or ())
        weight = probs.new_tensor([self.score_fusion['base_weight'] if n in base
                                   else self.score_fusion['novel_weight'] for n in names])
        det = det_scores.clamp(min=0, max=1)[:, None]
        return det.pow(1 - weight) * probs.pow(weight)

    def select(self, boxes: Tensor, scores: Tensor) -> InstanceData:
        """Best (box, class) pairs. boxes [K, 4], scores [K, C] -> InstanceData with
        ``bboxes`` [N, 4], ``scores`` [N], ``labels`` [N]."""
        num_classes = scores.shape[1]
        flat = scores.flatten()
        keep = (flat > self.test_cfg['score_thr']).nonzero().squeeze(1)
        flat = flat[keep]
        box_idx = torch.div(keep, num_classes, rounding_mode='floor')
        labels = keep % num_classes
        det_boxes = boxes[box_idx]
        if self.test_cfg['nms'] is not None and len(flat):
            _, order = batched_nms(det_boxes, flat, labels, self.test_cfg['nms'])
        else:
            order = flat.argsort(descending=True)
        order = order[:self.test_cfg['max_per_img']]
        return InstanceData(bboxes=det_boxes[order], scores=flat[order], labels=labels[order])

    # ------------------------------------------------------------------ modes
    def region_embeddings(self, batch_inputs: Tensor, boxes: List[Tensor]) -> Tensor:
        """L2-normalised region embeddings [B, Kmax, D] of per-image boxes (xyxy pixels
        of the network input), zero rows for padding."""
        padded, _ = pad_boxes(boxes, batch_inputs.shape[-2:], batch_inputs.device)
        if padded.shape[1] == 0:
            return batch_inputs.new_zeros(len(boxes), 0, self.prompter.embed_dim)
        vit = self.extract_feat(batch_inputs)
        regions = self.prompter(vit.patch_tokens, padded.to(batch_inputs.dtype), vit.patch_embeds)
        return F.normalize(regions, dim=-1)

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        boxes, det_scores = self.get_boxes(batch_inputs, batch_data_samples)
        regions = self.region_embeddings(batch_inputs, boxes)
        scale = self.logit_scale.exp()
        for i, sample in enumerate(batch_data_samples):
            names = self._class_names_of(sample)
            text = self.class_embeddings(names)
            k = len(boxes[i])
            probs = score_regions(regions[i, :k], text, scale).probs
            scores = self.fuse_scores(probs, det_scores[i], names)
            results = self.select(boxes[i].to(regions.device), scores)
            if rescale:
                factor = [1 / s for s in sample.metainfo['scale_factor']]
                results.bboxes = scale_boxes(results.bboxes, factor)
            sample.pred_instances = results
        return batch_data_samples

    def _forward(self, batch_inputs: Tensor, batch_data_samples: OptSampleList = None) -> Tensor:
        """Region embeddings [B, Kmax, D] of the samples' boxes (patch tokens without
        samples)."""
        if batch_data_samples is None:
            return self.extract_feat(batch_inputs).patch_tokens
        boxes, _ = self.get_boxes(batch_inputs, batch_data_samples)
        return self.region_embeddings(batch_inputs, boxes)

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> dict:
        raise RuntimeError(
            f'{type(self).__name__} is zero-shot (no training): evaluate it with '
            'tools/test.py CONFIG CONVERTED_CHECKPOINT')
