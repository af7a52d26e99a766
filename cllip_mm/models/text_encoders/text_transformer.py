# Copyright (c) cllip_mm contributors. All rights reserved.
"""The CLIP text encoder: a causal transformer pooled at the end-of-text token.

The one implementation of the text tower's forward: pretraining (:meth:`TextTransformer.forward`,
EOT pooling) and the mmdet language model (``ClocTextModel``: per-token features with its
own positions and attention mask) both run :meth:`TextTransformer.forward_features`.
"""
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
        grad_checkpointing (bool): Recompute each block in backward (saves the block
            activations; the gradients are unchanged).
        trim_padding (bool): :meth:`forward` runs the blocks on the first ``max(EOT
            position) + 1`` tokens of the batch only, not on the padded length. Exact:
            with the causal mask no position up to an EOT reads a later one, and only
            the EOT position is pooled. False runs the padded length (for checks).
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
                 trim_padding: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.width = width
        self.embed_dim = embed_dim
        self.eot_token_id = eot_token_id
        self.trim_padding = trim_padding
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

    def forward_features(self,
                         token_ids: torch.Tensor,
                         positions: Optional[torch.Tensor] = None,
                         attn_mask: Optional[torch.Tensor] = None,
                         project: bool = False) -> torch.Tensor:
        """Per-token features after ``ln_final``.

        Args:
            token_ids (Tensor): LongTensor [N, L].
            positions (Tensor, optional): LongTensor [N, L] indices into
                ``positional_embedding`` (each < ``context_length``); default
                ``0 .. L-1`` (then L <= ``context_length``).
            attn_mask (Tensor, optional): bool, True = may attend, broadcastable to
                [N, heads, L, L]; default the causal mask.
            project (bool): Multiply by ``text_projection`` (width ``embed_dim``).

        Returns:
            Tensor: [N, L, width], or [N, L, embed_dim] with ``project``.
        """
        length = token_ids.shape[1]
        if positions is None:
            if length > self.context_length:
                raise ValueError(f'{length} tokens exceed the context length {self.context_length}')
            pos_embed = self.positional_embedding[:length]
        else:
            pos_embed = self.positional_embedding[positions]
        if attn_mask is None:
            attn_mask = self.attn_mask[:length, :length]
        x = self.token_embedding(token_ids) + pos_embed
        x = self.ln_final(self.transformer(x, attn_mask=attn_mask))
        return x @ self.text_projection if project else x

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        """token_ids: LongTensor [N, L] -> text embeddings [N, D], *not* normalised.

        With ``trim_padding`` the blocks see [N, max(EOT index) + 1] tokens (the
        longest text of the batch), whatever padding L the tokenizer used.
        """
        index = self.pool_index(token_ids)
        if self.trim_padding and token_ids.shape[0]:
            token_ids = token_ids[:, :int(index.max()) + 1]
        pooled = self.forward_features(token_ids)[torch.arange(token_ids.shape[0],
                                                               device=token_ids.device), index]
        return pooled @ self.text_projection
