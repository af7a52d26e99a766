# Copyright (c) cllip_mm contributors. All rights reserved.
"""A region-aware LLaVA: transformers' ``LlavaForConditionalGeneration`` plus, optionally,
the paper's Ferret* region token made by a cllip_mm Prompter.

The model is LLaVA (``transformers.LlavaForConditionalGeneration``): a vision tower (here a
cllip_mm encoder converted to ``CLIPVisionModel``, :mod:`cllip_mm.mllm.vision`), LLaVA's
two-layer projector and a causal LM built from a config (a small Llama trained from
scratch in the demo; any ``AutoModel`` text config works the same). The image's patch tokens
of ``vision_feature_layer`` (the last block by default: what CLOC's region losses trained)
replace the ``<image>`` tokens of the input, ``image_seq_length`` of them.

With a ``region_sampler`` (a cllip_mm ``Prompter`` or ``ClocPrompter`` config; the CLOC
checkpoint's Prompter), each ``<region>`` token of the input is replaced by the region
embedding of its box, the CLOC region embedding of that box on the same image tokens
(:meth:`RegionLlavaForConditionalGeneration.region_features`, L2-normalised like
``CLOC.embed_boxes_of``), through its own two-layer projector. Boxes come with the input
as [B, R, 4] normalised xyxy in [0, 1] of the image, in the order their ``<region>``
tokens appear; ``region_valid`` [B, R] marks padding.

Without region boxes this is stock LLaVA: the weights of a model without region sampler
load into ``LlavaForConditionalGeneration`` unchanged (tested), and
:meth:`~RegionLlavaForConditionalGeneration.embed_inputs` gives the input embeddings
LLaVA's own forward builds from ``input_ids`` + ``pixel_values`` (tested). Training and
generation go through ``inputs_embeds`` (``forward(inputs_embeds=...)``,
``generate(inputs_embeds=...)``), so LLaVA's forward and ``GenerationMixin`` are used as
they are.
"""
from contextlib import nullcontext
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from transformers import LlavaConfig, LlavaForConditionalGeneration
from transformers.activations import ACT2FN

from .vision import vit_output_from_hf


@strict
class RegionLlavaConfig(LlavaConfig):
    """``LlavaConfig`` plus the region token.

    Args (on top of ``LlavaConfig``'s):
        region_token_index (int, optional): Id of the ``<region>`` token.
        region_sampler (dict, optional): The cllip_mm Prompter config (``type``:
            ``'Prompter'`` or ``'ClocPrompter'``, and its arguments); None: no region
            token (plain LLaVA).
        patch_token_norm (str): How the Prompter's patch tokens are read from the tower:
            ``'none'`` (the last block's output) or ``'ln_post'`` (through
            ``post_layernorm``), as the cllip_mm encoder was configured.
        image_processing (dict, optional): How images become ``pixel_values``: ``size``
            [h, w], ``mean`` / ``std`` (RGB, 0-255 scale); images are resized to ``size``
            without keeping the aspect ratio (the demo's test pipeline), so a box's
            normalised coordinates are those of the original image.
    """
    model_type = 'cllip_region_llava'

    region_token_index: Optional[int] = None
    region_sampler: Optional[dict] = None
    patch_token_norm: str = 'none'
    image_processing: Optional[dict] = None


class RegionProjector(nn.Module):
    """Region embedding [..., D] -> LM input [..., H]: LLaVA's projector layout."""

    def __init__(self, in_dim: int, hidden: int, act: str = 'gelu') -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, hidden)
        self.act = ACT2FN[act]
        self.linear_2 = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


def build_region_sampler(cfg: dict) -> nn.Module:
    """A cllip_mm Prompter from its config (``type`` + arguments)."""
    import cllip_mm.models.prompters  # noqa: F401  (registers the Prompters)
    from cllip_mm.registry import MODELS
    return MODELS.build(dict(cfg))


def _grad_context(module: nn.Module):
    """No autograd graph through a module none of whose parameters is trained."""
    trainable = any(p.requires_grad for p in module.parameters())
    return nullcontext() if trainable and torch.is_grad_enabled() else torch.no_grad()


class RegionLlavaForConditionalGeneration(LlavaForConditionalGeneration):
    """LLaVA with an optional Prompter region token (see the module docstring)."""
    config_class = RegionLlavaConfig

    def __init__(self, config: RegionLlavaConfig) -> None:
        super().__init__(config)
        self.region_sampler = None
        self.region_projector = None
        if config.region_sampler:
            if config.region_token_index is None:
                raise ValueError('a region_sampler needs region_token_index')
            self.region_sampler = build_region_sampler(config.region_sampler)
            self.region_projector = RegionProjector(self.region_sampler.embed_dim,
                                                    config.text_config.hidden_size,
                                                    config.projector_hidden_act)
            self.post_init()

    # ------------------------------------------------------------------ vision
    @property
    def num_image_tokens(self) -> int:
        """``<image>`` tokens per image: the patch grid, plus the class token with
        ``vision_feature_select_strategy='full'``."""
        vc = self.config.vision_config
        grid = (vc.image_size // vc.patch_size)**2
        return grid + (self.config.vision_feature_select_strategy == 'full')

    def encode_images(self, pixel_values: torch.Tensor, with_vit: bool = False):
        """Run the vision tower once.

        Args:
            pixel_values (Tensor): [B, 3, H, W] normalised RGB.
            with_vit (bool): Also return the ``ViTOutput`` the region sampler reads.

        Returns:
            tuple: image features [B, N, H_lm] (after LLaVA's projector; N =
            :attr:`num_image_tokens`) and the ``ViTOutput`` (or None).
        """
        tower = self.model.vision_tower
        pixel_values = pixel_values.to(self.dtype)
        with _grad_context(tower):
            out = tower(pixel_values, output_hidden_states=True)
            layer = self.config.vision_feature_layer
            layers = [layer] if isinstance(layer, int) else list(layer)
            selected = [out.hidden_states[i] for i in layers]
            if self.config.vision_feature_select_strategy == 'default':
                selected = [s[:, 1:] for s in selected]
            selected = torch.cat(selected, dim=-1)
            vit = (vit_output_from_hf(tower, pixel_values, out.last_hidden_state,
                                      self.config.patch_token_norm) if with_vit else None)
        return self.model.multi_modal_projector(selected), vit

    def region_features(self, vit, boxes: torch.Tensor,
                        valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The region sampler's L2-normalised embeddings [B, R, D] of boxes [B, R, 4]
        (normalised xyxy of the image) on a ``ViTOutput``: ``CLOC.embed_boxes_of``, before
        the region projector."""
        if self.region_sampler is None:
            raise ValueError('this model has no region sampler')
        with _grad_context(self.region_sampler):
            context = self.region_sampler.context_from_vit(vit)
            embeds = self.region_sampler.embed_boxes(context, boxes.to(vit.patch_tokens.dtype),
                                                     valid)
        return F.normalize(embeds, dim=-1)

    # ------------------------------------------------------------------ inputs
    def embed_inputs(self,
                     input_ids: torch.LongTensor,
                     pixel_values: Optional[torch.Tensor] = None,
                     region_boxes: Optional[torch.Tensor] = None,
                     region_valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The LM's input embeddings [B, L, H_lm]: token embeddings with the image features
        at the ``<image>`` tokens and the projected region embeddings at the ``<region>``
        tokens.

        Args:
            input_ids (LongTensor): [B, L]; sample b holds :attr:`num_image_tokens`
                ``<image>`` tokens when ``pixel_values`` is given, and as many
                ``<region>`` tokens as it has valid boxes.
            pixel_values (Tensor, optional): [B, 3, H, W] normalised RGB.
            region_boxes (Tensor, optional): [B, R, 4] normalised xyxy in [0, 1], in the
                order of the sample's ``<region>`` tokens.
            region_valid (Tensor, optional): [B, R] bool (default: all valid).
        """
        embeds = self.get_input_embeddings()(input_ids)
        region_mask = (input_ids == self.config.region_token_index
                       if self.config.region_token_index is not None else None)
        has_regions = region_mask is not None and bool(region_mask.any())
        if has_regions and self.region_sampler is None:
            raise ValueError('the input has <region> tokens but the model has no region sampler')
        if pixel_values is None:
            if has_regions:
                raise ValueError('<region> tokens need pixel_values')
            return embeds
        features, vit = self.encode_images(pixel_values, with_vit=has_regions)
        image_mask = input_ids == self.config.image_token_index
        per_sample = image_mask.sum(1)
        if not bool((per_sample == features.shape[1]).all()):
            raise ValueError(f'each sample needs {features.shape[1]} <image> tokens, got '
                             f'{per_sample.tolist()}')
        embeds = embeds.masked_scatter(image_mask[..., None], features.to(embeds.dtype))
        if not has_regions:
            return embeds
        if region_boxes is None:
            raise ValueError('the input has <region> tokens but no region_boxes were given')
        if region_valid is None:
            region_valid = torch.ones(region_boxes.shape[:2], dtype=torch.bool,
                                      device=region_boxes.device)
        counts = region_mask.sum(1)
        if not bool((counts == region_valid.sum(1)).all()):
            raise ValueError(f'<region> tokens per sample {counts.tolist()} != boxes per sample '
                             f'{region_valid.sum(1).tolist()}')
        regions = self.region_projector(self.region_features(vit, region_boxes, region_valid))
        return embeds.masked_scatter(region_mask[..., None],
                                     regions[region_valid].to(embeds.dtype))

    def loss_on(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor,
                labels: torch.LongTensor, pixel_values: torch.Tensor,
                region_boxes: Optional[torch.Tensor] = None,
                region_valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The LM loss (mean over the labelled tokens; ``-100`` is ignored)."""
        embeds = self.embed_inputs(input_ids, pixel_values, region_boxes, region_valid)
        return self(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels).loss

    @torch.no_grad()
    def generate_from(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor,
                      pixel_values: torch.Tensor, region_boxes: Optional[torch.Tensor] = None,
                      region_valid: Optional[torch.Tensor] = None,
                      **generate_kwargs) -> torch.LongTensor:
        """``generate`` on the merged embeddings of left-padded prompts; returns the new
        token ids [B, T] only."""
        embeds = self.embed_inputs(input_ids, pixel_values, region_boxes, region_valid)
        return self.generate(inputs_embeds=embeds, attention_mask=attention_mask,
                             **generate_kwargs)

    def freeze(self, vision_tower: bool = True, region_sampler: bool = True) -> None:
        """Stop training the vision tower and / or the region sampler (the projectors and
        the LM stay trainable)."""
        self.model.vision_tower.requires_grad_(not vision_tower)
        if self.region_sampler is not None:
            self.region_sampler.requires_grad_(not region_sampler)

