# Copyright (c) cllip_mm contributors. All rights reserved.
"""CLOC: CLIP plus promptable region embeddings (arXiv 2410.02746)."""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmengine.model import BaseModel
from mmengine.structures import InstanceData

from cllip_mm.registry import MODELS, TASK_UTILS
from cllip_mm.structures import RegionTextDataSample, SampleList
from ..layers import boxes_to_rois, roi_align
from ..losses import phrase_keys


class RegionBatch(NamedTuple):
    """The regions of a batch, padded per image and flattened.

    Attributes:
        boxes (Tensor): [B, Rmax, 4] normalised xyxy in [0, 1] of the network input
            (zeros where padded).
        valid (Tensor): [B, Rmax] bool, False for padding.
        phrases (list[str]): The R valid regions' phrases, in ``boxes[valid]`` order.
    """
    boxes: torch.Tensor
    valid: torch.Tensor
    phrases: List[str]


def pack_regions(data_samples: SampleList, input_hw: Tuple[int, int],
                 device: Union[str, torch.device]) -> RegionBatch:
    """Pad the ground-truth regions of ``data_samples`` to a fixed R per image.

    ``gt_regions.bboxes`` are xyxy pixels of the (unpadded) image; they are normalised
    by the batch input size ``input_hw`` (h, w), so they line up with the patch grid.
    """
    counts = torch.tensor([len(s.gt_regions) for s in data_samples], device=device)
    r_max = int(counts.max()) if len(data_samples) else 0
    valid = torch.arange(r_max, device=device)[None] < counts[:, None]
    boxes = torch.zeros(len(data_samples), r_max, 4, device=device)
    if r_max:
        h, w = input_hw
        scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=device)
        # One scatter of all boxes (row-major order of ``valid``), not one copy per image.
        boxes[valid] = torch.cat([s.gt_regions.bboxes for s in data_samples]).to(device).float() / scale
    phrases = [p for s in data_samples for p in s.gt_regions.phrases]
    return RegionBatch(boxes.clamp(0, 1), valid, phrases)


@MODELS.register_module()
class CLOC(BaseModel):
    """Contrastive Localized Language-Image Pre-training.

    The total loss is ``loss_clip + loss_region + loss_ground`` (each loss module holds
    its own weight), logged apart. With ``prompter=None`` (and no region losses) this
    is the CLIP baseline, trained on the same data with the same recipe.

    Args:
        image_encoder (dict): Config of the image encoder (e.g. ``VisionTransformer``).
        text_encoder (dict): Config of the text encoder (``TextTransformer``).
        tokenizer (dict): Config of the tokenizer (``HFTokenizer``), built from
            ``TASK_UTILS``. ``text_encoder.eot_token_id`` and ``vocab_size`` default to
            the tokenizer's.
        clip_loss (dict): Image-text loss (``ClipContrastiveLoss`` or ``SigLipLoss``).
        prompter (dict, optional): The :class:`Prompter`.
        grounding_head (dict, optional): The :class:`GroundingHead` (needs a prompter).
        region_loss (dict, optional): ``RegionTextContrastiveLoss`` (needs a prompter).
        grounding_loss (dict, optional): ``GroundingLoss`` (needs a grounding head).
        phrase_context_length (int): Token length for region phrases (captions use the
            tokenizer's ``context_length``).
        region_embed_mode (str): How ``predict`` embeds GT regions: 'prompter' or 'crop'
            (crop the box from the input, resize to ``crop_size``, encode as an image:
            the RegionCLIP protocol for CLIP). Defaults to 'prompter' when there is a
            prompter, else 'crop'.
        crop_size (tuple, optional): (h, w) of crops; defaults to the encoder's input size.
        vocabulary_template (str): Template for the class names of region
            classification, e.g. ``'a photo of a {}.'``.
        data_preprocessor (dict, optional): Usually ``ImgDataPreprocessor`` with CLIP's
            mean / std and ``bgr_to_rgb=True``.
    """

    def __init__(self,
                 image_encoder: dict,
                 text_encoder: dict,
                 tokenizer: dict,
                 clip_loss: dict,
                 prompter: Optional[dict] = None,
                 grounding_head: Optional[dict] = None,
                 region_loss: Optional[dict] = None,
                 grounding_loss: Optional[dict] = None,
                 phrase_context_length: int = 32,
                 region_embed_mode: Optional[str] = None,
                 crop_size: Optional[Tuple[int, int]] = None,
                 vocabulary_template: str = '{}',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.tokenizer = TASK_UTILS.build(tokenizer)
        text_encoder = dict(text_encoder)
        text_encoder.setdefault('vocab_size', self.tokenizer.vocab_size)
        text_encoder.setdefault('eot_token_id', self.tokenizer.eot_token_id)
        self.image_encoder = MODELS.build(image_encoder)
        self.text_encoder = MODELS.build(text_encoder)
        if self.text_encoder.vocab_size < self.tokenizer.vocab_size:
            raise ValueError(f'text encoder vocab_size {self.text_encoder.vocab_size} < tokenizer '
                             f'vocab size {self.tokenizer.vocab_size}')
        self.clip_loss = MODELS.build(clip_loss)
        self.prompter = MODELS.build(prompter) if prompter else None
        self.grounding_head = MODELS.build(grounding_head) if grounding_head else None
        self.region_loss = MODELS.build(region_loss) if region_loss else None
        self.grounding_loss = MODELS.build(grounding_loss) if grounding_loss else None
        if (self.region_loss or self.grounding_head) and self.prompter is None:
            raise ValueError('region_loss and grounding_head need a prompter')
        if self.grounding_loss and self.grounding_head is None:
            raise ValueError('grounding_loss needs a grounding_head')
        self.phrase_context_length = phrase_context_length
        self.region_embed_mode = region_embed_mode or ('prompter' if self.prompter else 'crop')
        if self.region_embed_mode not in ('prompter', 'crop'):
            raise ValueError(
                f"region_embed_mode must be 'prompter' or 'crop', got {region_embed_mode!r}")
        if self.region_embed_mode == 'prompter' and self.prompter is None:
            raise ValueError("region_embed_mode='prompter' needs a prompter")
        self.crop_size = tuple(crop_size) if crop_size else tuple(self.image_encoder.img_size)
        self.vocabulary_template = vocabulary_template

    # ------------------------------------------------------------------ inference API
    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, 3, H, W] normalised RGB -> L2-normalised [B, D]."""
        return F.normalize(self.image_encoder(images).image_embed, dim=-1)

    def embed_texts(self, texts: Sequence[str], context_length: Optional[int] = None) -> torch.Tensor:
        """N strings -> L2-normalised [N, D]."""
        device = self.text_encoder.positional_embedding.device
        token_ids = self.tokenizer(list(texts), context_length).to(device)
        return F.normalize(self.text_encoder(token_ids), dim=-1)

    def embed_phrases(self, phrases: Sequence[str]) -> torch.Tensor:
        """Region phrases (shorter context) -> L2-normalised [N, D]."""
        return self.embed_texts(phrases, self.phrase_context_length)

    def embed_regions(self, images: torch.Tensor, boxes: torch.Tensor,
                      mode: Optional[str] = None) -> torch.Tensor:
        """Region embeddings of box prompts.

        Args:
            images (Tensor): [B, 3, H, W] normalised RGB.
            boxes (Tensor): [B, R, 4] normalised xyxy in [0, 1] of ``images``.
            mode (str, optional): 'prompter' or 'crop'; defaults to ``region_embed_mode``.

        Returns:
            Tensor: L2-normalised [B, R, D].
        """
        mode = mode or self.region_embed_mode
        if mode == 'crop':
            return self._embed_crops(images, boxes)
        if self.prompter is None:
            raise ValueError("mode='prompter' needs a prompter")
        vit = self.image_encoder(images)
        return F.normalize(self.prompter(vit.patch_tokens, boxes, vit.patch_embeds), dim=-1)

    def ground(self, images: torch.Tensor, texts: Sequence[Sequence[str]]) -> List[torch.Tensor]:
        """Boxes of text prompts.

        Args:
            images (Tensor): [B, 3, H, W] normalised RGB.
            texts (list[list[str]]): For each image, the phrases to ground.

        Returns:
            list[Tensor]: For each image, [R_i, 4] normalised xyxy in [0, 1].
        """
        if self.grounding_head is None:
            raise ValueError('this model has no grounding head')
        counts = [len(t) for t in texts]
        r_max = max(counts, default=0)
        valid = torch.arange(r_max, device=images.device)[None] < torch.tensor(
            counts, device=images.device)[:, None]
        _, phrase_embeds, index = self._embed_distinct_phrases([p for t in texts for p in t], images)
        boxes = bbox_cxcywh_to_xyxy(
            self._ground(self.image_encoder(images), phrase_embeds[index], valid))
        return [b[:n] for b, n in zip(boxes, counts)]

    def _embed_crops(self, images: torch.Tensor, boxes: torch.Tensor,
                     chunk: int = 256) -> torch.Tensor:
        """Crop-and-encode (RegionCLIP's CLIP baseline): each box is cut from the input
        with RoIAlign (bilinear crop-and-resize) and embedded as an image."""
        b, r, _ = boxes.shape
        rois = boxes_to_rois(boxes, images.shape[-2:])
        embeds = []
        for start in range(0, rois.shape[0], chunk):
            crops = roi_align(images, rois[start:start + chunk], self.crop_size, 1.0, 2)
            embeds.append(self.embed_images(crops))
        if not embeds:
            return boxes.new_zeros(b, r, self.text_encoder.embed_dim)
        return torch.cat(embeds).unflatten(0, (b, r))

    def _embed_distinct_phrases(self, phrases: Sequence[str], like: torch.Tensor):
        """Encode each distinct phrase once.

        Returns:
            tuple: the U distinct phrases (first-seen order), their embeddings [U, D] and
            the LongTensor [R] index of each of the R ``phrases`` among them.
        """
        distinct = list(dict.fromkeys(phrases))
        position = {p: i for i, p in enumerate(distinct)}
        index = torch.tensor([position[p] for p in phrases], dtype=torch.long, device=like.device)
        if not distinct:
            return distinct, like.new_zeros(0, self.text_encoder.embed_dim), index
        return distinct, self.embed_phrases(distinct), index

    def _ground(self, vit, region_phrase_embeds: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Grounding-head boxes [B, Rmax, 4] (normalised cxcywh) of the phrase embeddings
        [R, D] laid out at the True places of ``valid`` [B, Rmax]."""
        prompts = region_phrase_embeds.new_zeros(*valid.shape, region_phrase_embeds.shape[-1])
        prompts[valid] = region_phrase_embeds
        return self.grounding_head(prompts, vit.patch_tokens, self.prompter, vit.patch_embeds)

    # ------------------------------------------------------------------ training
    def forward(self, inputs: torch.Tensor, data_samples: Optional[SampleList] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}". Only supports loss, predict and tensor mode')

    def _forward(self, inputs: torch.Tensor, data_samples: Optional[SampleList] = None):
        """Image embeddings [B, D] and, with data samples, caption embeddings [B, D]."""
        image_embeds = self.embed_images(inputs)
        if data_samples is None:
            return image_embeds
        return image_embeds, self.embed_texts([s.caption for s in data_samples])

    def loss(self, inputs: torch.Tensor, data_samples: SampleList) -> Dict[str, torch.Tensor]:
        """Losses (``loss_clip``, ``loss_region``, ``loss_ground``) and diagnostics.

        Args:
            inputs (Tensor): [B, 3, H, W] normalised RGB.
            data_samples (list[RegionTextDataSample]): With ``caption`` and ``gt_regions``.
        """
        vit = self.image_encoder(inputs)
        image_embeds = F.normalize(vit.image_embed, dim=-1)
        text_embeds = self.embed_texts([s.caption for s in data_samples])
        losses = {'loss_clip': self.clip_loss(image_embeds, text_embeds)}
        if self.prompter is None:
            return losses

        regions = pack_regions(data_samples, inputs.shape[-2:], inputs.device)
        # Each distinct phrase of the batch is encoded once; duplicates are positives.
        distinct, phrase_embeds, region_phrase_index = self._embed_distinct_phrases(
            regions.phrases, inputs)
        if self.region_loss is not None:
            region_embeds = self.prompter(vit.patch_tokens, regions.boxes, vit.patch_embeds)
            losses['loss_region'] = self.region_loss(
                F.normalize(region_embeds, dim=-1)[regions.valid], phrase_embeds, region_phrase_index,
                phrase_keys(distinct, inputs.device),
                regions.valid.nonzero()[:, 0])
        if self.grounding_loss is not None:
            pred = self._ground(vit, phrase_embeds[region_phrase_index], regions.valid)
            losses['loss_ground'] = self.grounding_loss(pred[regions.valid],
                                                        regions.boxes[regions.valid])
        if len(phrase_embeds) > 1:  # the text-collapse alarm: mean cosine of distinct phrases
            with torch.no_grad():
                cos = phrase_embeds @ phrase_embeds.t()
                off_diagonal = ~torch.eye(len(cos), dtype=torch.bool, device=cos.device)
                losses['phrase_cos'] = cos[off_diagonal].mean()
        return losses

    # ------------------------------------------------------------------ evaluation
    def predict(self, inputs: torch.Tensor, data_samples: SampleList) -> SampleList:
        """Fill ``image_embed``, ``text_embed`` and ``pred_regions`` (see
        :class:`RegionTextDataSample`) for the metrics."""
        vit = self.image_encoder(inputs)
        image_embeds = F.normalize(vit.image_embed, dim=-1)
        text_embeds = self.embed_texts([s.caption for s in data_samples])
        regions = pack_regions(data_samples, inputs.shape[-2:], inputs.device)
        if self.region_embed_mode == 'prompter':
            region_embeds = F.normalize(
                self.prompter(vit.patch_tokens, regions.boxes, vit.patch_embeds), dim=-1)
        else:
            region_embeds = self._embed_crops(inputs, regions.boxes)

        vocabulary = data_samples[0].metainfo.get('vocabulary') if data_samples else None
        vocab_embeds = None
        if vocabulary:
            vocab_embeds = self.embed_phrases([self.vocabulary_template.format(v) for v in vocabulary])

        ground_boxes = None
        if self.grounding_head is not None and regions.phrases:
            _, phrase_embeds, index = self._embed_distinct_phrases(regions.phrases, inputs)
            ground_boxes = bbox_cxcywh_to_xyxy(self._ground(vit, phrase_embeds[index], regions.valid))

        h, w = inputs.shape[-2:]
        scale = inputs.new_tensor([w, h, w, h])
        for i, sample in enumerate(data_samples):
            sample.image_embed = image_embeds[i]
            sample.text_embed = text_embeds[i]
            keep = regions.valid[i]
            pred = InstanceData()
            pred.embeds = region_embeds[i][keep]
            if vocab_embeds is not None:
                pred.scores = pred.embeds @ vocab_embeds.t()
            if ground_boxes is not None:
                pred.ground_bboxes = ground_boxes[i][keep] * scale
            sample.pred_regions = pred
        return data_samples
