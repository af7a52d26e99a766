# Copyright (c) cllip_mm contributors. All rights reserved.
"""Grounding: a text prompt plus the image's tokens -> a box."""
import math
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.layers.transformer.utils import MLP, inverse_sigmoid
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from mmengine.model import BaseModule

from cllip_mm.registry import MODELS
from ..prompters import Prompter, PrompterLayer


def token_centres(h: int, w: int, device=None) -> torch.Tensor:
    """Centres [h*w, 2] (x, y), normalised to (0, 1), of an h x w patch grid in the
    row-major order of ``tokens.flatten(2)``."""
    ys, xs = torch.meshgrid((torch.arange(h, device=device) + 0.5) / h,
                            (torch.arange(w, device=device) + 0.5) / w, indexing='ij')
    return torch.stack([xs.flatten(), ys.flatten()], dim=-1)


class GroundingTrainOutput(NamedTuple):
    """What :meth:`GroundingHead.forward_train` gives the losses.

    Attributes:
        boxes (Tensor): [P, 4] predicted boxes, normalised cxcywh in (0, 1).
        box_targets (Tensor): [P, 4] their target boxes, normalised xyxy in [0, 1].
        box_weights (Tensor | None): [P] per-box weights (each region's sum to 1), or
            None for one box per region.
        token_logits (Tensor | None): [R, N] 'token' mode: each region's phrase scored
            against the image tokens.
        token_targets (Tensor | None): [R] the index of the token holding each target
            box's centre.
        refined_boxes (Tensor | None): [Q, 4] with ``refine``: the boxes
            ``boxes[refine_index]`` after the refinement step, normalised cxcywh.
        refine_index (Tensor | None): [Q] which of ``boxes`` were refined.
        refine_weights (Tensor | None): [Q] their weights (each region's sum to 1).
    """
    boxes: torch.Tensor
    box_targets: torch.Tensor
    box_weights: Optional[torch.Tensor] = None
    token_logits: Optional[torch.Tensor] = None
    token_targets: Optional[torch.Tensor] = None
    refined_boxes: Optional[torch.Tensor] = None
    refine_index: Optional[torch.Tensor] = None
    refine_weights: Optional[torch.Tensor] = None


@MODELS.register_module()
class GroundingHead(BaseModule):
    """Text embedding -> prompt token -> the Prompter's layers -> box (docs/method.md, section 3.4).

    The prompt token is ``Linear(text_embed) + text type embedding``; it goes through the
    *same* :class:`Prompter` layers as box prompts (shared weights), then through
    ``num_layers`` layers of its own (:class:`PrompterLayer`, none by default). The box
    comes from one of two heads (``box_mode``):

    - ``'mlp'``: a 3-layer MLP and a sigmoid on the prompt token (DETR's box head);
    - ``'anchored'``: the prompt scores every image token (scaled dot product of two
      linear maps); the softmax of the scores weighs the token centres into an anchor
      point and the image tokens into a feature; an MLP on ``prompt + feature`` gives an
      offset of the anchor in logit space (Deformable DETR's reference-point
      refinement) and the box size. The loss reaches the token scores directly, so
      *where* the phrase is gets learnt as a matching problem, like the region loss.
    - ``'token'``: the phrase scores every image token as in ``'anchored'``, and the
      scores are trained directly, with a cross-entropy whose target is the token holding
      the box's centre (:meth:`forward_train`); each token reads a box from ``prompt +
      token``: an offset of its centre in logit space and the box size, trained at every
      token inside the target box (FCOS's positive locations). At inference the box is
      the one read at the best-scoring token (OWL-ViT and CenterNet read boxes per
      location the same way): *which* object and *how large* are learnt apart, the
      latter from the token on the object. With ``rescore_topk`` = K > 1, inference reads
      boxes at the K best tokens and keeps the one whose region embedding (the Prompter
      on that box) is closest to the phrase: the region branch checks *which* object.

    Args:
        embed_dim (int): Width D of the text embeddings.
        width (int): Width C of the Prompter.
        num_box_layers (int): Layers of the box MLP.
        num_layers (int): Grounding-only prompter layers after the shared ones.
        heads (int): Attention heads of those layers.
        box_mode (str): 'mlp' (default), 'anchored' or 'token'.
        rescore_topk (int): 'token' mode, inference: candidate tokens re-scored by the
            region branch; 1 (default) keeps the best-scoring token's box.
        refine (bool): 'token' mode: one refinement step. The box, detached, becomes a box
            prompt of the Prompter (its RoI grid and position through the shared layers,
            :meth:`Prompter.region_tokens`); an MLP on ``region token + phrase prompt``
            gives a correction of the box in logit space (a two-stage detector's box head,
            DETR's iterative refinement), starting from the identity. Trained on the
            boxes read at the centre token and at the best-scoring token when that one is
            inside the target box.
    """

    BOX_MODES = ('mlp', 'anchored', 'token')

    def __init__(self, embed_dim: int, width: int, num_box_layers: int = 3,
                 num_layers: int = 0, heads: int = 4, box_mode: str = 'mlp',
                 rescore_topk: int = 1, refine: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if box_mode not in self.BOX_MODES:
            raise ValueError(f'box_mode must be in {self.BOX_MODES}, got {box_mode!r}')
        if rescore_topk < 1 or (rescore_topk > 1 and box_mode != 'token'):
            raise ValueError(f"rescore_topk must be >= 1, and > 1 only with box_mode='token'; "
                             f'got {rescore_topk} with {box_mode!r}')
        if refine and box_mode != 'token':
            raise ValueError(f"refine needs box_mode='token', got {box_mode!r}")
        self.box_mode = box_mode
        self.rescore_topk = rescore_topk
        self.text_proj = nn.Linear(embed_dim, width)
        self.text_type_embed = nn.Parameter(torch.zeros(width))
        self.layers = nn.ModuleList(PrompterLayer(width, heads) for _ in range(num_layers))
        if box_mode in ('anchored', 'token'):
            self.query_proj = nn.Linear(width, width)
            self.key_proj = nn.Linear(width, width)
        self.box_head = MLP(width, width, 4, num_box_layers)
        self.refine_head = MLP(width, width, 4, num_box_layers) if refine else None

    def init_weights(self) -> None:
        super().init_weights()
        if self.refine_head is not None:  # the refinement starts as the identity
            nn.init.zeros_(self.refine_head.layers[-1].weight)
            nn.init.zeros_(self.refine_head.layers[-1].bias)

    def refine_boxes(self, boxes: torch.Tensor, region_tokens: torch.Tensor,
                     prompts: torch.Tensor) -> torch.Tensor:
        """The refinement step: boxes [..., 4] (normalised cxcywh; detached here), their
        region tokens [..., C] and phrase prompts [..., C] -> refined boxes [..., 4]."""
        delta = self.refine_head(region_tokens + prompts)
        return (inverse_sigmoid(boxes.detach()) + delta).sigmoid()

    def _region_tokens_of(self, prompter: Prompter, patch_tokens: torch.Tensor,
                          patch_embeds: Optional[torch.Tensor], boxes: torch.Tensor,
                          images: torch.Tensor) -> torch.Tensor:
        """Region tokens [P, C] of boxes [P, 4] (normalised cxcywh, detached) of the
        images ``images`` [P] (non-decreasing), laid out per image for the Prompter."""
        counts = torch.bincount(images, minlength=patch_tokens.size(0))
        slot = torch.arange(len(images), device=images.device) - (counts.cumsum(0) - counts)[images]
        layout = boxes.new_zeros(patch_tokens.size(0), max(int(counts.max()), 1), 4)
        layout[images, slot] = bbox_cxcywh_to_xyxy(boxes.detach()).clamp(0, 1)
        return prompter.region_tokens(patch_tokens, layout, patch_embeds)[images, slot]

    def token_scores(self, prompts: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """'anchored' and 'token' modes: scores [B, R, N] of the prompts [B, R, C] for the
        image tokens [B, N, C]."""
        return self.query_proj(prompts) @ self.key_proj(context).transpose(1, 2) / math.sqrt(
            prompts.shape[-1])

    def _prompts_and_context(self, text_embeds, patch_tokens, prompter, patch_embeds):
        prompts = self.text_proj(text_embeds) + self.text_type_embed
        context = prompter.image_context(patch_tokens, patch_embeds)
        prompts = prompter.run_layers(prompts, context)
        for layer in self.layers:
            prompts = layer(prompts, context)
        return prompts, context

    def boxes_at_tokens(self, prompts: torch.Tensor, context: torch.Tensor,
                        grid_hw: tuple, images: torch.Tensor, regions: torch.Tensor,
                        tokens: torch.Tensor) -> torch.Tensor:
        """'token' mode: boxes [P, 4] (normalised cxcywh) read by the prompts
        ``prompts[images, regions]`` at the tokens ``context[images, tokens]``.

        Args:
            prompts (Tensor): [B, R, C]. context (Tensor): [B, N, C] with N = h * w.
            grid_hw (tuple): (h, w) of the token grid.
            images, regions, tokens (Tensor): [P] indices.
        """
        centres = token_centres(*grid_hw, device=context.device).to(context.dtype)[tokens]
        out = self.box_head(prompts[images, regions] + context[images, tokens])
        return torch.cat([(inverse_sigmoid(centres) + out[:, :2]).sigmoid(),
                          out[:, 2:].sigmoid()], dim=-1)

    def forward(self,
                text_embeds: torch.Tensor,
                patch_tokens: torch.Tensor,
                prompter: Prompter,
                patch_embeds: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            text_embeds (Tensor): [B, R, D] embeddings of the phrases to ground.
            patch_tokens (Tensor): [B, C, h, w] output tokens of the image encoder.
            prompter (Prompter): Whose layers (and image context) are shared.
            patch_embeds (Tensor, optional): [B, C, h, w] the stem's patch embeddings,
                when the prompter's ``context_sources`` use them.

        Returns:
            Tensor: [B, R, 4] boxes, normalised cxcywh in (0, 1).
        """
        prompts, context = self._prompts_and_context(text_embeds, patch_tokens, prompter,
                                                     patch_embeds)
        if self.box_mode == 'mlp':
            return self.box_head(prompts).sigmoid()
        scores = self.token_scores(prompts, context)  # [B, R, N]
        if self.box_mode == 'token':
            return self._token_mode_boxes(text_embeds, prompts, context, scores, patch_tokens,
                                          prompter, patch_embeds)
        weights = scores.softmax(dim=-1)
        centres = token_centres(*patch_tokens.shape[-2:], device=weights.device)
        anchor = weights @ centres.to(weights.dtype)  # [B, R, 2] (x, y)
        out = self.box_head(prompts + weights @ context)
        return torch.cat([(inverse_sigmoid(anchor) + out[..., :2]).sigmoid(),
                          out[..., 2:].sigmoid()], dim=-1)

    def _token_mode_boxes(self, text_embeds, prompts, context, scores, patch_tokens, prompter,
                          patch_embeds) -> torch.Tensor:
        """'token' mode inference: [B, R, 4] boxes read at the best token, or at the best of
        the top K tokens by the region branch's phrase similarity."""
        b, r, n = scores.shape
        k = min(self.rescore_topk, n)
        top = scores.topk(k, dim=-1).indices  # [B, R, K]
        images, regions, _ = torch.meshgrid(*(torch.arange(n, device=scores.device)
                                              for n in (b, r, k)), indexing='ij')
        boxes = self.boxes_at_tokens(prompts, context, patch_tokens.shape[-2:], images.flatten(),
                                     regions.flatten(), top.flatten()).view(b, r, k, 4)
        if k == 1 and self.refine_head is None:
            return boxes[:, :, 0]
        candidates = bbox_cxcywh_to_xyxy(boxes).clamp(0, 1).view(b, r * k, 4)
        tokens = prompter.region_tokens(patch_tokens, candidates, patch_embeds).view(b, r, k, -1)
        if k > 1:
            similarity = F.cosine_similarity(prompter.embed_tokens(tokens),
                                             text_embeds[:, :, None], dim=-1)  # [B, R, K]
            best = similarity.argmax(dim=-1)[..., None, None]  # [B, R, 1, 1]
            boxes = boxes.gather(2, best.expand(b, r, 1, 4))
            tokens = tokens.gather(2, best.expand(b, r, 1, tokens.size(-1)))
        boxes, tokens = boxes[:, :, 0], tokens[:, :, 0]
        if self.refine_head is not None:
            boxes = self.refine_boxes(boxes, tokens, prompts)
        return boxes

    def forward_train(self,
                      text_embeds: torch.Tensor,
                      patch_tokens: torch.Tensor,
                      prompter: Prompter,
                      target_boxes: torch.Tensor,
                      valid: torch.Tensor,
                      patch_embeds: Optional[torch.Tensor] = None) -> GroundingTrainOutput:
        """Predictions and their targets for :class:`GroundingLoss`.

        Args:
            text_embeds (Tensor): [B, R, D] phrase embeddings (zeros where not ``valid``).
            patch_tokens (Tensor): [B, C, h, w] output tokens of the image encoder.
            prompter (Prompter): Whose layers (and image context) are shared.
            target_boxes (Tensor): [B, R, 4] normalised xyxy in [0, 1] of the input.
            valid (Tensor): [B, R] bool, the real regions.
            patch_embeds (Tensor, optional): As in :meth:`forward`.
        """
        if self.box_mode != 'token':
            boxes = self(text_embeds, patch_tokens, prompter, patch_embeds)
            return GroundingTrainOutput(boxes[valid], target_boxes[valid])
        prompts, context = self._prompts_and_context(text_embeds, patch_tokens, prompter,
                                                     patch_embeds)
        h, w = patch_tokens.shape[-2:]
        images, regions = valid.nonzero(as_tuple=True)
        targets = target_boxes[images, regions]  # [R, 4] xyxy
        token_logits = self.token_scores(prompts, context)[images, regions]  # [R, N]
        cx, cy = bbox_xyxy_to_cxcywh(targets)[:, :2].unbind(-1)
        col = (cx * w).long().clamp(0, w - 1)
        row = (cy * h).long().clamp(0, h - 1)
        token_targets = row * w + col
        # Box-reading tokens: every token whose centre is inside the box, and the centre's
        # own token (a small box may hold no token centre).
        centres = token_centres(h, w, device=targets.device).to(targets.dtype)  # [N, 2]
        inside = ((centres[None, :, 0] > targets[:, None, 0]) &
                  (centres[None, :, 0] < targets[:, None, 2]) &
                  (centres[None, :, 1] > targets[:, None, 1]) &
                  (centres[None, :, 1] < targets[:, None, 3]))  # [R, N]
        inside[torch.arange(len(targets), device=inside.device), token_targets] = True
        k, tokens = inside.nonzero(as_tuple=True)
        boxes = self.boxes_at_tokens(prompts, context, (h, w), images[k], regions[k], tokens)
        box_weights = 1.0 / inside.sum(dim=1).to(boxes.dtype)[k]
        refined = refine_index = refine_weights = None
        if self.refine_head is not None:
            # Refined from the boxes that inference would refine: the centre token's and,
            # when it is on the target, the best-scoring token's.
            best = token_logits.detach().argmax(dim=-1)
            refine_index = ((tokens == token_targets[k]) | (tokens == best[k])).nonzero()[:, 0]
            kr = k[refine_index]
            tokens_of_boxes = self._region_tokens_of(prompter, patch_tokens, patch_embeds,
                                                     boxes[refine_index], images[kr])
            refined = self.refine_boxes(boxes[refine_index], tokens_of_boxes,
                                        prompts[images[kr], regions[kr]])
            counts = torch.bincount(kr, minlength=len(targets)).to(boxes.dtype)
            refine_weights = 1.0 / counts[kr]
        return GroundingTrainOutput(boxes, targets[k], box_weights, token_logits,
                                    token_targets, refined, refine_index, refine_weights)
