# Copyright (c) cllip_mm contributors. All rights reserved.
"""The CLIP text encoder: a causal transformer pooled at the end-of-text token."""
from typing import Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from cllip_mm.registry import MODELS
from ..layers import Transformer


@MODELS.register_module()
class TextTransformer(BaseModule):
    """CLIP's text tower (OpenAI / open_clip parameter names).

    Args:
        vocab_size (int): Token vocabulary size.
        context_length (int): Longest token sequence (77 in CLIP). Shorter inputs use
            the first positions; the causal mask makes that exact.
        width (int): Token width.
        layers (int): Number of blocks.
        heads (int): Attention heads.
        embed_dim (int): Output width D of ``text_projection``.
        mlp_ratio (float): MLP hidden width / width.
        act (str): 'gelu' or 'quick_gelu'.
        eot_token_id (int, optional): Pool at the first position holding this id; when
            None, pool at the argmax of the ids (OpenAI's rule: EOT has the largest id).
    """

    def __init__(self,
                 vocab_size: int = 49408,
                 context_length: int = 77,
                 width: int = 512,
                 layers: int = 12,
                 heads: int = 8,
                 embed_dim: int = 512,
                 mlp_ratio: float = 4.0,
                 act: str = 'gelu',
                 eot_token_id: Optional[int] = None,
                 grad_checkpointing: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.width = width
        self.embed_dim = embed_dim
        self.eot_token_id = eot_token_id
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = Transformer(width, layers, heads, mlp_ratio, act,
                                       grad_checkpointing=grad_checkpointing)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        self.register_buffer(
            'attn_mask',
            torch.ones(context_length, context_length, dtype=torch.bool).tril(),
            persistent=False)
        self._init_clip_weights()

    def _init_clip_weights(self) -> None:
        """open_clip's initialisation of the text tower."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        layers = max(len(self.transformer.resblocks), 1)
        proj_std = (self.width**-0.5) * ((2 * layers)**-0.5)
        attn_std = self.width**-0.5
        fc_std = (2 * self.width)**-0.5
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=self.width**-0.5)

    def pool_index(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Index [N] of the end-of-text token of each sequence in ``token_ids`` [N, L]."""
        if self.eot_token_id is None:
            return token_ids.argmax(dim=-1)
        is_eot = token_ids == self.eot_token_id
        if not bool(is_eot.any(dim=-1).all()):
            raise ValueError(f'a token sequence has no end-of-text token (id {self.eot_token_id})')
        return is_eot.int().argmax(dim=-1)

    def forward_features(self, token_ids: torch.Tensor) -> torch.Tensor:
        """token_ids: LongTensor [N, L], L <= context_length -> token features [N, L, width]
        after ``ln_final``."""
        length = token_ids.shape[1]
        if length > self.context_length:
            raise ValueError(f'{length} tokens exceed the context length {self.context_length}')
        x = self.token_embedding(token_ids) + self.positional_embedding[:length]
        x = self.transformer(x, attn_mask=self.attn_mask[:length, :length])
        return self.ln_final(x)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        """token_ids: LongTensor [N, L] -> text embeddings [N, D], *not* normalised."""
        x = self.forward_features(token_ids)
        pooled = x[torch.arange(x.shape[0], device=x.device), self.pool_index(token_ids)]
        return pooled @ self.text_projection
