# Copyright (c) cllip_mm contributors. All rights reserved.
"""The paper's grounding branch (CLOC, sec. 3.4, eq. 3, Table A): text prompt -> box."""
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from cllip_mm.registry import MODELS
from ..losses.utils import gather_variable_with_grad


@MODELS.register_module()
class ClocGroundingHead(BaseModule):
    """A two-layer GELU MLP that regresses a box's two corners from the Prompter's
    embedding of a text prompt, trained with an L2 loss.

    The head meets the model at tensors: it receives ``z(y) = Prompter(f_T(y), f_I(x))``
    ([P, D], :meth:`ClocPrompter.embed_texts`), not the Prompter.

    - [paper] Two layers with GELU (Table A); [ours] hidden width ``hidden_dim``
      (default D).
    - [paper] The box is two corners (top-left, bottom-right), normalised xyxy.
      [ours] The output is linear (``sigmoid=False``, a plain regression); ``predict``
      clips it to [0, 1].
    - [paper] ``loss_ground`` = the squared error of the 4 corner coordinates averaged
      over the coordinates and the regions of the (global) batch (eq. 3, 1 / (4 M N));
      [ours] the mean is over the valid regions, which equals 1 / (4 M N) when every image
      has M regions.
      Predictions of all ranks are gathered with gradients, so N processes give the loss
      of one process on the whole batch.

    Args:
        embed_dim (int): D, the width of ``z``.
        hidden_dim (int, optional): The MLP's hidden width; defaults to D.
        sigmoid (bool): Squash the corners into (0, 1).
        loss_weight (float): Multiplier of ``loss_ground`` (CLOC's single lambda
            multiplies it as well).
    """

    def __init__(self,
                 embed_dim: int,
                 hidden_dim: Optional[int] = None,
                 sigmoid: bool = False,
                 loss_weight: float = 1.0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        hidden_dim = hidden_dim or embed_dim
        self.mlp = nn.Sequential(nn.Linear(embed_dim, hidden_dim), nn.GELU(),
                                 nn.Linear(hidden_dim, 4))
        self.sigmoid = sigmoid
        self.loss_weight = loss_weight

    def forward(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """prompt_embeds [..., D] -> boxes [..., 4], normalised xyxy (not clipped)."""
        boxes = self.mlp(prompt_embeds)
        return boxes.sigmoid() if self.sigmoid else boxes

    def predict(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """Boxes [..., 4] normalised xyxy, clipped to [0, 1]."""
        return self(prompt_embeds).clamp(0, 1)

    def loss(self, prompt_embeds: torch.Tensor, target_boxes: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            prompt_embeds (Tensor): [R, D] this rank's text prompts after the Prompter.
            target_boxes (Tensor): [R, 4] their boxes, normalised xyxy in [0, 1].

        Returns:
            dict: ``loss_ground``, a scalar equal on every rank.
        """
        if prompt_embeds.dim() != 2 or target_boxes.shape != (prompt_embeds.size(0), 4):
            raise ValueError(f'{type(self).__name__}.loss: prompt_embeds [R, D] and target_boxes '
                             f'[R, 4], got {tuple(prompt_embeds.shape)} and '
                             f'{tuple(target_boxes.shape)}')
        error = (self(prompt_embeds) - target_boxes.to(prompt_embeds.dtype)).pow(2)
        error = gather_variable_with_grad(error)
        if error.numel() == 0:  # a zero that keeps the head in the graph (DDP)
            return {'loss_ground': self(prompt_embeds).sum() * 0}
        return {'loss_ground': self.loss_weight * error.mean()}
