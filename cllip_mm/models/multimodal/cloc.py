# Copyright (c) cllip_mm contributors. All rights reserved.
"""CLOC: CLIP plus promptable region embeddings (arXiv 2410.02746)."""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmengine.dist import all_reduce
from mmengine.model import BaseModel
from mmengine.structures import InstanceData

from cllip_mm.registry import MODELS, TASK_UTILS
from cllip_mm.structures import (
    SampleList,
    denormalize_boxes,
    normalize_boxes,
    pad_boxes,
    padding_mask,
)
from cllip_mm.text.class_names import get_templates
from ..heads import ClocGroundingHead
from ..layers import boxes_to_rois, roi_align
from ..losses import phrase_keys
from ..utils import (
    LOGIT_SCALE_CAP,
    ClassEmbeddingCacheMixin,
    RegionScores,
    ensemble_class_embeddings,
    score_regions,
)

#: What ``CLOC.predict`` can write into each data sample:
#:
#: - ``image_embed``: ``sample.image_embed`` [D];
#: - ``text_embed``: ``sample.text_embed`` [D] of the ``caption`` metainfo, or
#:   ``sample.text_embeds`` [K, D] of the ``captions`` metainfo (skipped without either);
#: - ``region_embeds``: ``pred_regions.embeds`` [R, D] of the GT boxes and, with a
#:   ``vocabulary`` metainfo, ``pred_regions.scores`` [R, V] (cosine similarity with the
#:   class embeddings, phrase context);
#: - ``phrase_embeds``: ``pred_regions.phrase_embeds`` [R, D] of the GT phrases;
#: - ``grounding``: ``pred_regions.ground_bboxes`` [R, 4] (with a grounding head);
#: - ``image_scores``: ``sample.pred_scores`` [1, V], the image embedding against the
#:   class embeddings of ``vocabulary`` (caption context).
TEST_OUTPUTS = ('image_embed', 'text_embed', 'region_embeds', 'phrase_embeds', 'grounding',
                'image_scores')
DEFAULT_TEST_OUTPUTS = ('image_embed', 'text_embed', 'region_embeds', 'grounding')


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


class GroundedPhrases(NamedTuple):
    """What :meth:`CLOC.ground_with_scores` returns, padded per image.

    Attributes:
        boxes (Tensor): [B, Pmax, 4] normalised xyxy in [0, 1] of the network input
            (``images.shape[-2:]``), clipped to it; meaningless where padded (read
            the ``valid`` places).
        valid (Tensor): [B, Pmax] bool, False for padding.
        scores (Tensor): [B, Pmax] cosine between each phrase's embedding and the
            Prompter's region embedding of its predicted box; 0 where padded.
        phrase_embeds (Tensor): [P, D] L2-normalised embeddings of the P phrases, in
            ``boxes[valid]`` order.
    """
    boxes: torch.Tensor
    valid: torch.Tensor
    scores: torch.Tensor
    phrase_embeds: torch.Tensor


def patch_grid_boxes(input_hw: Tuple[int, int], patch_size: int, window: float) -> torch.Tensor:
    """One box per patch of the input's patch grid: centred on the patch, ``window``
    patches wide and high, clipped to the input.

    Args:
        input_hw (tuple): (H, W) of the network input; the grid is
            (H // patch_size, W // patch_size), as the ViT's.
        patch_size (int): The ViT's patch size p.
        window (float): Box side in patches.

    Returns:
        Tensor: [h * w, 4] normalised xyxy of the input, row-major (patch (i, j) is row
        ``i * w + j``; its centre is pixel ((j + 0.5) p, (i + 0.5) p)).
    """
    h, w = input_hw
    gh, gw = h // patch_size, w // patch_size
    ys = (torch.arange(gh, dtype=torch.float32) + 0.5) * patch_size
    xs = (torch.arange(gw, dtype=torch.float32) + 0.5) * patch_size
    cy, cx = torch.meshgrid(ys, xs, indexing='ij')
    half = window * patch_size / 2
    boxes = torch.stack([cx - half, cy - half, cx + half, cy + half], dim=-1).reshape(-1, 4)
    return normalize_boxes(boxes, input_hw)


def pack_regions(data_samples: SampleList, input_hw: Tuple[int, int],
                 device: Union[str, torch.device]) -> RegionBatch:
    """Pad the ground-truth regions of ``data_samples`` to a fixed R per image.

    ``gt_regions.bboxes`` are xyxy pixels of the (unpadded) image; they are normalised
    by the batch input size ``input_hw`` (h, w), so they line up with the patch grid
    (:func:`cllip_mm.structures.pad_boxes`).
    """
    boxes, valid = pad_boxes([s.gt_regions.bboxes for s in data_samples], input_hw, device)
    phrases = [p for s in data_samples for p in s.gt_regions.phrases]
    return RegionBatch(boxes, valid, phrases)


@MODELS.register_module()
class CLOC(ClassEmbeddingCacheMixin, BaseModel):
    """Contrastive Localized Language-Image Pre-training.

    The total loss is ``loss_clip + lambda * (loss_region + loss_ground)``, each term
    logged apart: ``region_loss_weighting='image_fraction'`` is the paper's single lambda
    (eq. 4, Table A: the fraction of the global batch's images that have region text);
    ``'fixed'`` (lambda = 1) leaves each loss module's own weight. With ``prompter=None``
    (and no region losses) this is the CLIP baseline, trained on the same data with the
    same recipe.

    Two region designs plug in: the paper's (:class:`ClocPrompter` +
    :class:`ClocGroundingHead`, whose ``loss`` gives ``loss_ground``) and this project's
    (:class:`Prompter` + :class:`GroundingHead` + ``GroundingLoss``).

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
        grounding_loss (dict, optional): ``GroundingLoss`` (needs a ``GroundingHead``;
            a ``ClocGroundingHead`` owns its loss).
        region_loss_weighting (str): 'fixed' (default) or 'image_fraction' (see above).
        phrase_context_length (int): Token length for region phrases (captions use the
            tokenizer's ``context_length``).
        region_embed_mode (str): How ``predict`` embeds GT regions: 'prompter' or 'crop'
            (crop the box from the input, resize to ``crop_size``, encode as an image:
            the RegionCLIP protocol for CLIP). Defaults to 'prompter' when there is a
            prompter, else 'crop'.
        crop_size (tuple, optional): (h, w) of crops; defaults to the encoder's input size.
        crop_scale (float): Crop context: each box is scaled by this factor about its
            centre (then clipped to the image) before cropping; 1.0 crops the box.
        vocabulary_template (str): Template for the class names of region
            classification, e.g. ``'a photo of a {}.'`` (used when ``test_cfg`` gives
            no ``prompt_templates``).
        test_cfg (dict, optional): What ``predict`` computes (see :data:`TEST_OUTPUTS`):
            ``outputs`` (default ``('image_embed', 'text_embed', 'region_embeds',
            'grounding')``) and ``prompt_templates`` (a list of templates with one
            ``{}``, or a set name of :mod:`cllip_mm.datasets.class_names` such as
            ``'openai'``): each class name is embedded with every template, the class
            embedding is the normalised mean of the normalised embeddings.
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
                 region_loss_weighting: str = 'fixed',
                 phrase_context_length: int = 32,
                 region_embed_mode: Optional[str] = None,
                 crop_size: Optional[Tuple[int, int]] = None,
                 crop_scale: float = 1.0,
                 vocabulary_template: str = '{}',
                 test_cfg: Optional[dict] = None,
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
        if self.grounding_loss and isinstance(self.grounding_head, ClocGroundingHead):
            raise ValueError('ClocGroundingHead computes its own loss: set grounding_loss=None')
        if region_loss_weighting not in ('fixed', 'image_fraction'):
            raise ValueError("region_loss_weighting must be 'fixed' or 'image_fraction', got "
                             f'{region_loss_weighting!r}')
        self.region_loss_weighting = region_loss_weighting
        self.phrase_context_length = phrase_context_length
        self.region_embed_mode = region_embed_mode or ('prompter' if self.prompter else 'crop')
        if self.region_embed_mode not in ('prompter', 'crop'):
            raise ValueError(
                f"region_embed_mode must be 'prompter' or 'crop', got {region_embed_mode!r}")
        if self.region_embed_mode == 'prompter' and self.prompter is None:
            raise ValueError("region_embed_mode='prompter' needs a prompter")
        self.crop_size = tuple(crop_size) if crop_size else tuple(self.image_encoder.img_size)
        if crop_scale <= 0:
            raise ValueError(f'crop_scale must be positive, got {crop_scale}')
        self.crop_scale = float(crop_scale)
        self.vocabulary_template = vocabulary_template
        test_cfg = dict(test_cfg or {})
        unknown = set(test_cfg) - {'outputs', 'prompt_templates'}
        if unknown:
            raise ValueError(f'test_cfg: unknown keys {sorted(unknown)}')
        outputs = tuple(test_cfg.get('outputs', DEFAULT_TEST_OUTPUTS))
        bad = set(outputs) - set(TEST_OUTPUTS)
        if bad:
            raise ValueError(f'test_cfg.outputs: unknown {sorted(bad)}; choose from {TEST_OUTPUTS}')
        templates = test_cfg.get('prompt_templates') or (vocabulary_template, )
        self.test_cfg = dict(outputs=outputs, prompt_templates=get_templates(templates))

    # ------------------------------------------------------------------ inference API
    @property
    def embed_dim(self) -> int:
        """Width D of every embedding the model returns (image, text, region)."""
        return self.text_encoder.embed_dim

    @property
    def patch_size(self) -> int:
        """Patch size p of the image encoder: patch (i, j) of an input covers pixels
        [j p, (j + 1) p) x [i p, (i + 1) p)."""
        return self.image_encoder.patch_size

    def region_logit_scale(self) -> float:
        """The scale ``s`` of region-text logits ``s * cos(region, phrase)`` (the
        temperature of region classification): ``exp`` of the region loss's log scale
        when it has its own, else of the image-text loss's (which a
        ``share_logit_scale=True`` region loss and the CLIP baseline use), capped at
        :data:`~cllip_mm.models.utils.LOGIT_SCALE_CAP` (100, as the losses clamp it in
        training). 100 when neither loss has a log scale."""
        for loss in (self.region_loss, self.clip_loss):
            log_scale = getattr(loss, 'logit_scale', None)
            if log_scale is not None:
                return float(log_scale.detach().exp().clamp(max=LOGIT_SCALE_CAP))
        return LOGIT_SCALE_CAP

    def score_regions(self, region_embeds: torch.Tensor,
                      class_embeds: torch.Tensor) -> RegionScores:
        """Zero-shot region classification scores.

        Args:
            region_embeds (Tensor): [..., R, D] L2-normalised region embeddings (e.g.
                of :meth:`embed_regions`).
            class_embeds (Tensor): [V, D] L2-normalised class embeddings (e.g. of
                :meth:`class_embeddings` with ``phrase_context_length``).

        Returns:
            RegionScores: ``similarity`` [..., R, V] (cosine) and ``probs`` [..., R, V]
            (softmax over V of ``region_logit_scale() * similarity``).
        """
        return score_regions(region_embeds, class_embeds, self.region_logit_scale())

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
        return self.embed_boxes_of(self.image_encoder(images), boxes)

    def embed_boxes_of(self, vit, boxes: torch.Tensor,
                       valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The Prompter's L2-normalised region embeddings [B, R, D] of boxes [B, R, 4]
        (normalised xyxy) on an encoder output (``ViTOutput``), for either Prompter design;
        ``valid`` [B, R] marks padding (zeros out, and skipped where the Prompter can)."""
        if self.prompter is None:
            raise ValueError('this model has no prompter')
        context = self.prompter.context_from_vit(vit)
        return F.normalize(self.prompter.embed_boxes(context, boxes, valid), dim=-1)

    def embed_sample_regions(self, images: torch.Tensor,
                             data_samples: SampleList) -> List[torch.Tensor]:
        """Region embeddings of the samples' boxes (:meth:`embed_regions`, default mode).

        Args:
            images (Tensor): [B, 3, H, W] normalised RGB.
            data_samples (list[RegionTextDataSample]): ``gt_regions.bboxes`` [R_i, 4]
                xyxy pixels of ``images`` (packed as :func:`pack_regions` does).

        Returns:
            list[Tensor]: For each sample, L2-normalised [R_i, D].
        """
        regions = pack_regions(data_samples, images.shape[-2:], images.device)
        if regions.boxes.shape[1] == 0:
            return [images.new_zeros(0, self.embed_dim) for _ in data_samples]
        embeds = self.embed_regions(images, regions.boxes)
        return [e[v] for e, v in zip(embeds, regions.valid)]

    def embed_patches(self, images: torch.Tensor, mode: str = 'prompter',
                      window: float = 1.0) -> torch.Tensor:
        """A dense embedding map: one L2-normalised embedding per patch of the input.

        Args:
            images (Tensor): [B, 3, H, W] normalised RGB.
            mode (str): 'prompter': the region embedding (:meth:`embed_regions`, the
                model's ``region_embed_mode``) of a box centred on each patch,
                ``window`` patches wide (:func:`patch_grid_boxes`); 'patch': the patch
                tokens through the image projection
                (:meth:`VisionTransformer.project_patch_tokens`, MaskCLIP's reading of
                CLIP).
            window (float): Box side in patches, for 'prompter'.

        Returns:
            Tensor: [B, h * w, D], patches row-major from the top-left; (h, w) =
            (H // p, W // p), p the ViT's patch size.
        """
        if mode == 'prompter':
            grid = patch_grid_boxes(images.shape[-2:], self.patch_size, window).to(images.device)
            return self.embed_regions(images, grid.expand(len(images), -1, -1))
        if mode == 'patch':
            encoder = self.image_encoder
            return F.normalize(encoder.project_patch_tokens(encoder(images).patch_tokens), dim=-1)
        raise ValueError(f"mode must be 'prompter' or 'patch', got {mode!r}")

    def similarity_grids(self, images: torch.Tensor, texts: Sequence[Sequence[str]],
                         mode: str = 'prompter', window: float = 1.0) -> List[torch.Tensor]:
        """Per-patch region-text similarity (heat maps on the patch grid).

        Args:
            images (Tensor): [B, 3, H, W] normalised RGB.
            texts (list[list[str]]): For each image, its T_i phrases.
            mode, window: As in :meth:`embed_patches`.

        Returns:
            list[Tensor]: For each image, [T_i, h, w]: the cosine of each phrase's
            embedding (:meth:`embed_phrases`) with the embedding of each patch; cell
            (i, j) is patch (i, j) of the input, i.e. pixels [j p, (j + 1) p) x
            [i p, (i + 1) p) of ``images``.
        """
        gh, gw = images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size
        embeds = self.embed_patches(images, mode, window)
        grids = []
        for image_embeds, image_texts in zip(embeds, texts):
            text_embeds = self.embed_phrases(list(image_texts))
            grids.append((image_embeds @ text_embeds.t()).t().reshape(len(image_texts), gh, gw))
        return grids

    def ground(self, images: torch.Tensor, texts: Sequence[Sequence[str]]) -> List[torch.Tensor]:
        """Boxes of text prompts.

        Args:
            images (Tensor): [B, 3, H, W] normalised RGB.
            texts (list[list[str]]): For each image, the phrases to ground.

        Returns:
            list[Tensor]: For each image, [R_i, 4] normalised xyxy in [0, 1].
        """
        boxes, valid, _ = self.ground_padded(self.image_encoder(images), texts)
        return [b[v] for b, v in zip(boxes, valid)]

    def ground_padded(self, vit, texts: Sequence[Sequence[str]]
                      ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`ground` from an encoder output (``ViTOutput``), padded per image.

        Returns:
            tuple: boxes [B, Rmax, 4] normalised xyxy, ``valid`` [B, Rmax] bool, and the
            L2-normalised embeddings [R, D] of the R phrases, in ``boxes[valid]`` order.
        """
        if self.grounding_head is None:
            raise ValueError('this model has no grounding head')
        valid = padding_mask([len(t) for t in texts], vit.patch_tokens.device)
        _, phrase_embeds, index = self._embed_distinct_phrases([p for t in texts for p in t],
                                                               vit.patch_tokens)
        region_phrase_embeds = phrase_embeds[index]
        if not valid.any():  # no phrase at all: nothing to ground, empty results
            return vit.patch_tokens.new_zeros(*valid.shape, 4), valid, region_phrase_embeds
        boxes = self._ground_xyxy(vit, region_phrase_embeds, valid)
        return boxes, valid, region_phrase_embeds

    def ground_with_scores(self, images: torch.Tensor,
                           texts: Sequence[Sequence[str]]) -> GroundedPhrases:
        """:meth:`ground` plus a confidence per box, from one image-encoder pass: the
        cosine between each phrase and the Prompter's embedding of its predicted box.

        Args:
            images (Tensor): [B, 3, H, W] normalised RGB.
            texts (list[list[str]]): For each image, the phrases to ground.

        Returns:
            GroundedPhrases: padded per image (see there for shapes and frames).
        """
        vit = self.image_encoder(images)
        boxes, valid, phrase_embeds = self.ground_padded(vit, texts)
        scores = boxes.new_zeros(valid.shape)
        if valid.any():
            regions = self.embed_boxes_of(vit, boxes, valid)
            scores[valid] = (regions[valid] * phrase_embeds).sum(-1)
        return GroundedPhrases(boxes, valid, scores, phrase_embeds)

    def _embed_crops(self, images: torch.Tensor, boxes: torch.Tensor,
                     chunk: int = 256) -> torch.Tensor:
        """Crop-and-encode (RegionCLIP's CLIP baseline): each box (scaled by
        ``crop_scale`` about its centre) is cut from the input with RoIAlign (bilinear
        crop-and-resize to ``crop_size``) and embedded as an image."""
        b, r, _ = boxes.shape
        if self.crop_scale != 1.0:
            centre = (boxes[..., :2] + boxes[..., 2:]) / 2
            half = (boxes[..., 2:] - boxes[..., :2]) / 2
            boxes = torch.cat([centre - half * self.crop_scale,
                               centre + half * self.crop_scale], -1).clamp(0, 1)
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

    @staticmethod
    def _pad_phrases(region_phrase_embeds: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The phrase embeddings [R, D] laid out at the True places of ``valid`` [B, Rmax]
        -> [B, Rmax, D], zeros elsewhere."""
        prompts = region_phrase_embeds.new_zeros(*valid.shape, region_phrase_embeds.shape[-1])
        prompts[valid] = region_phrase_embeds
        return prompts

    def _ground(self, vit, region_phrase_embeds: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Grounding-head boxes [B, Rmax, 4] (normalised cxcywh) of the phrase embeddings
        [R, D] laid out at the True places of ``valid`` [B, Rmax]."""
        return self.grounding_head(self._pad_phrases(region_phrase_embeds, valid),
                                   vit.patch_tokens, self.prompter, vit.patch_embeds)

    def _ground_xyxy(self, vit, region_phrase_embeds: torch.Tensor,
                     valid: torch.Tensor) -> torch.Tensor:
        """Grounding boxes as normalised xyxy clipped to the input, [B, Rmax, 4], of the
        phrase embeddings [R, D] laid out at the True places of ``valid`` [B, Rmax]."""
        if isinstance(self.grounding_head, ClocGroundingHead):
            prompts = self.prompter.embed_texts(self.prompter.context_from_vit(vit),
                                                self._pad_phrases(region_phrase_embeds, valid),
                                                valid)
            return self.grounding_head.predict(prompts)
        return bbox_cxcywh_to_xyxy(self._ground(vit, region_phrase_embeds, valid)).clamp(0, 1)

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
        context = self.prompter.context_from_vit(vit)  # what the prompts of an image share
        if self.region_loss is not None:
            region_embeds = self.prompter.embed_boxes(context, regions.boxes, regions.valid)
            shared_scale = (self.clip_loss.logit_scale
                            if self.region_loss.logit_scale is None else None)
            losses['loss_region'] = self.region_loss(
                F.normalize(region_embeds, dim=-1)[regions.valid], phrase_embeds, region_phrase_index,
                phrase_keys(distinct, inputs.device),
                regions.valid.nonzero()[:, 0], logit_scale=shared_scale)
        if isinstance(self.grounding_head, ClocGroundingHead):
            prompts = self.prompter.embed_texts(
                context, self._pad_phrases(phrase_embeds[region_phrase_index], regions.valid),
                regions.valid)
            losses.update(self.grounding_head.loss(prompts[regions.valid],
                                                   regions.boxes[regions.valid]))
        elif self.grounding_loss is not None:
            out = self.grounding_head.forward_train(
                self._pad_phrases(phrase_embeds[region_phrase_index], regions.valid),
                vit.patch_tokens, self.prompter, regions.boxes, regions.valid, vit.patch_embeds)
            losses['loss_ground'] = self.grounding_loss(out.boxes, out.box_targets,
                                                        out.box_weights)
            if out.refined_boxes is not None:
                losses['loss_ground_refine'] = self.grounding_loss(
                    out.refined_boxes, out.box_targets[out.refine_index], out.refine_weights)
            if out.token_logits is not None:
                losses['loss_ground_token'] = self.grounding_loss.token_loss(
                    out.token_logits, out.token_targets)
        if self.region_loss_weighting == 'image_fraction':
            weight = self.region_lambda(regions.valid)
            losses.update({k: weight * v for k, v in losses.items()
                           if k.startswith(('loss_region', 'loss_ground'))})
            losses['region_lambda'] = weight
        if len(phrase_embeds) > 1:  # the text-collapse alarm: mean cosine of distinct phrases
            with torch.no_grad():
                cos = phrase_embeds @ phrase_embeds.t()
                off_diagonal = ~torch.eye(len(cos), dtype=torch.bool, device=cos.device)
                losses['phrase_cos'] = cos[off_diagonal].mean()
        return losses

    @staticmethod
    def region_lambda(valid: torch.Tensor) -> torch.Tensor:
        """The paper's lambda (eq. 4, Table A): the number of images with region text over
        the batch size, both summed over all processes.

        Args:
            valid (Tensor): [B, Rmax] bool, this process's valid regions.

        Returns:
            Tensor: a 0-dim float, equal on every process.
        """
        counts = torch.stack([valid.any(dim=1).sum(), torch.tensor(valid.size(0))]).to(
            device=valid.device, dtype=torch.float64)
        all_reduce(counts)  # sum over processes (a no-op without a process group)
        return (counts[0] / counts[1].clamp(min=1)).float()

    # ------------------------------------------------------------------ evaluation
    def class_embeddings(self, names: Sequence[str],
                         context_length: Optional[int] = None,
                         templates: Optional[Sequence[str]] = None) -> torch.Tensor:
        """L2-normalised [V, D] class embeddings: each name with every template,
        normalised, averaged, normalised (CLIP's ensemble). Cached per (names, templates,
        context) until the next ``train()`` or state-dict load
        (:class:`~cllip_mm.models.utils.ClassEmbeddingCacheMixin`).

        Args:
            names (Sequence[str]): The V class names.
            context_length (int, optional): Token length; None is the caption context,
                ``phrase_context_length`` embeds the names as region phrases.
            templates (Sequence[str] | str, optional): Templates with one ``'{}'`` for
                the name, or a template set name (``'openai'``, see
                :func:`~cllip_mm.text.class_names.get_templates`); defaults to
                ``test_cfg.prompt_templates``.
        """
        templates = (self.test_cfg['prompt_templates'] if templates is None
                     else get_templates(templates))
        return self.cached_class_embeddings(
            (tuple(names), templates, context_length),
            lambda: ensemble_class_embeddings(
                lambda texts: self.embed_texts(texts, context_length), names, templates))

    def predict(self, inputs: torch.Tensor, data_samples: SampleList) -> SampleList:
        """Fill the fields of ``test_cfg.outputs`` (see :data:`TEST_OUTPUTS` and
        :class:`RegionTextDataSample`) for the metrics.

        Args:
            inputs (Tensor): [B, 3, H, W] normalised RGB.
            data_samples (list[RegionTextDataSample]): ``gt_regions.bboxes`` xyxy pixels
                of ``inputs``; metainfo ``caption`` / ``captions`` / ``vocabulary`` as
                the outputs need them.
        """
        outputs = set(self.test_cfg['outputs'])
        want_regions = 'region_embeds' in outputs
        want_ground = 'grounding' in outputs and self.grounding_head is not None
        need_vit = bool(outputs & {'image_embed', 'image_scores'}) or want_ground or (
            want_regions and self.region_embed_mode == 'prompter')
        vit = self.image_encoder(inputs) if need_vit else None
        image_embeds = F.normalize(vit.image_embed, dim=-1) if vit is not None else None
        vocabulary = data_samples[0].metainfo.get('vocabulary') if data_samples else None

        if 'text_embed' in outputs:
            self._predict_texts(data_samples)
        if 'image_scores' in outputs and vocabulary:
            image_scores = image_embeds @ self.class_embeddings(vocabulary).t()
        regions = pack_regions(data_samples, inputs.shape[-2:], inputs.device)
        region_embeds = phrase_embeds = ground_boxes = vocab_embeds = None
        if want_regions:
            if self.region_embed_mode == 'prompter':
                region_embeds = self.embed_boxes_of(vit, regions.boxes, regions.valid)
            else:
                region_embeds = self._embed_crops(inputs, regions.boxes)
            if vocabulary:
                vocab_embeds = self.class_embeddings(vocabulary, self.phrase_context_length)
        if regions.phrases and (want_ground or 'phrase_embeds' in outputs):
            _, distinct_embeds, index = self._embed_distinct_phrases(regions.phrases, inputs)
            phrase_embeds = distinct_embeds[index]
            if want_ground:
                ground_boxes = self._ground_xyxy(vit, phrase_embeds, regions.valid)

        starts = regions.valid.sum(1).cumsum(0) - regions.valid.sum(1)
        for i, sample in enumerate(data_samples):
            if 'image_embed' in outputs:
                sample.image_embed = image_embeds[i]
            if 'image_scores' in outputs and vocabulary:
                sample.pred_scores = image_scores[i:i + 1]
            keep = regions.valid[i]
            pred = InstanceData()
            if region_embeds is not None:
                pred.embeds = region_embeds[i][keep]
                if vocab_embeds is not None:
                    pred.scores = self.score_regions(pred.embeds, vocab_embeds).similarity
            if phrase_embeds is not None and 'phrase_embeds' in outputs:
                pred.phrase_embeds = phrase_embeds[starts[i]:starts[i] + int(keep.sum())]
            if ground_boxes is not None:
                pred.ground_bboxes = denormalize_boxes(ground_boxes[i][keep], inputs.shape[-2:])
            sample.pred_regions = pred
        return data_samples

    def _predict_texts(self, data_samples: SampleList) -> None:
        """``text_embed`` [D] of each sample's ``caption``, or ``text_embeds`` [K, D] of
        its ``captions``, in one text-encoder call for the batch."""
        texts, spans = [], []
        for sample in data_samples:
            if 'captions' in sample.metainfo:
                captions = list(sample.captions)
            elif 'caption' in sample.metainfo:
                captions = [sample.caption]
            else:
                captions = []
            spans.append((len(texts), len(captions)))
            texts += captions
        if not texts:
            return
        embeds = self.embed_texts(texts)
        for sample, (start, n) in zip(data_samples, spans):
            if 'captions' in sample.metainfo:
                sample.text_embeds = embeds[start:start + n]
            elif n:
                sample.text_embed = embeds[start]
