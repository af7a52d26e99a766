# Copyright (c) cllip_mm contributors. All rights reserved.
"""The CLOC text encoder as an mmdet language model (the interface of ``BertModel``)."""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.language_models.bert import generate_masks_with_special_tokens_and_transfer_map
from mmdet.registry import MODELS
from mmengine.model import BaseModel

from cllip_mm.models.tokenizers import HFTokenizer
from cllip_mm.utils.weights_meta import check_pretrained_init
from .utils import build_cllip_module


class ClocTextBody(nn.Module):
    """Holds the text transformer as ``model`` and its output width as
    ``language_dim``, where mmdet's detectors look for them
    (``language_model.language_backbone.body.language_dim``)."""

    def __init__(self, model: nn.Module, language_dim: int) -> None:
        super().__init__()
        self.model = model
        self.language_dim = language_dim


@MODELS.register_module()
class ClocTextModel(BaseModel):
    """The cllip_mm text tower (``TextTransformer`` + ``HFTokenizer``) behind the
    interface of mmdet's ``BertModel``, for Grounding DINO / GLIP style detectors.

    What those detectors use, and what this class gives:

    - ``tokenizer``: a Hugging Face fast tokenizer (``tokenizer(texts, padding=...,
      return_tensors='pt')`` with ``char_to_token`` for ``tokens_positive``). Its
      encodings are ``SOT tokens EOT`` as in pretraining.
    - ``max_tokens``, ``pad_to_max`` and ``language_backbone.body.language_dim``.
    - ``forward(captions)`` -> dict with ``embedded`` [B, L, language_dim] (padding
      zeroed), ``hidden`` (the same, unmasked), ``masks`` (the text self-attention
      mask the detector's text layers use: [B, L, L] bool, True = may attend, between
      two special tokens, as BERT's; [B, L] padding mask without sub-sentences),
      ``position_ids`` [B, L] (restart at each sub-sentence, as BERT's) and
      ``text_token_mask`` [B, L] bool (True = real token).

    How the causal CLIP tower encodes a prompt such as ``"red circle. blue square."``
    with ``use_sub_sentence_represent=True``: every sub-sentence (ended by a token of
    ``special_tokens_list``) is encoded as if it were its own pretraining text
    ``SOT phrase .``: its tokens attend causally within the sub-sentence and to the
    leading SOT token, with positions 1, 2, ... So class names do not see each other
    and the prompt may be longer than the tower's context length (only one
    sub-sentence has to fit). Without sub-sentences the whole prompt is one causal
    sequence of at most ``context_length`` tokens.

    Args:
        tokenizer_path (str): Local tokenizer (see :class:`HFTokenizer`).
        text_encoder (dict): Config of the cllip_mm ``TextTransformer``;
            ``vocab_size`` and ``eot_token_id`` default to the tokenizer's.
        max_tokens (int): Longest tokenised prompt (longer ones are truncated).
        pad_to_max (bool): Pad to ``max_tokens`` instead of the longest prompt.
        use_sub_sentence_represent (bool): See above (Grounding DINO uses it).
        special_tokens_list (Sequence[str]): Separators of sub-sentences besides the
            tokenizer's SOT / EOT; each must be one token.
        project_tokens (bool): Multiply the token features by the tower's
            ``text_projection`` (the joint image-text space, width ``embed_dim``)
            instead of returning the ``width``-wide features after ``ln_final``.
        init_cfg (dict, optional): E.g. ``dict(type='Pretrained', checkpoint=...,
            prefix='language_model.')`` for a converted checkpoint.
    """

    def __init__(self,
                 tokenizer_path: str,
                 text_encoder: dict,
                 max_tokens: int = 256,
                 pad_to_max: bool = False,
                 use_sub_sentence_represent: bool = True,
                 special_tokens_list: Sequence[str] = ('.', '?'),
                 project_tokens: bool = False,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(init_cfg=init_cfg, **kwargs)
        text_encoder = dict(text_encoder)
        self.text_tokenizer = HFTokenizer(
            tokenizer_path, context_length=text_encoder.get('context_length', 77))
        text_encoder.setdefault('vocab_size', self.text_tokenizer.vocab_size)
        text_encoder.setdefault('eot_token_id', self.text_tokenizer.eot_token_id)
        encoder = build_cllip_module(text_encoder)
        self.context_length = encoder.context_length
        self.project_tokens = project_tokens
        language_dim = encoder.embed_dim if project_tokens else encoder.width
        self.language_backbone = nn.Sequential(
            OrderedDict([('body', ClocTextBody(encoder, language_dim))]))

        self.tokenizer = self.text_tokenizer.tokenizer
        self.max_tokens = max_tokens
        self.pad_to_max = pad_to_max
        self.use_sub_sentence_represent = use_sub_sentence_represent
        if not use_sub_sentence_represent and max_tokens > self.context_length:
            raise ValueError(
                f'max_tokens ({max_tokens}) exceeds the text encoder\'s context length '
                f'({self.context_length}); use sub-sentences or lower max_tokens')
        ids = self.tokenizer('a', add_special_tokens=True)['input_ids']
        sot, eot = self.text_tokenizer.sot_token_id, self.text_tokenizer.eot_token_id
        if ids[0] != sot or ids[-1] != eot:
            raise ValueError(f'tokenizer at {tokenizer_path!r} does not add the start / end '
                             f'of text tokens itself (got ids {ids})')
        if not getattr(self.tokenizer, 'is_fast', False):
            raise ValueError(f'tokenizer at {tokenizer_path!r} is not a fast (Rust) tokenizer: '
                             'Grounding DINO / GLIP need its char_to_token')
        self.special_token_ids = [sot, eot]
        for token in special_tokens_list:
            token_ids = self.tokenizer(token, add_special_tokens=False)['input_ids']
            if len(token_ids) != 1:
                raise ValueError(f'special token {token!r} is not a single token of the '
                                 f'tokenizer at {tokenizer_path!r} (ids {token_ids})')
            self.special_token_ids.append(token_ids[0])

    def init_weights(self) -> None:
        """As ``BaseModule``'s, after checking that a ``Pretrained`` checkpoint's meta
        asks for this tower's activation and tokenizer (``cllip_mm.utils.weights_meta``)."""
        check_pretrained_init(self)
        super().init_weights()

    @property
    def text_encoder(self) -> nn.Module:
        """The cllip_mm ``TextTransformer``."""
        return self.language_backbone.body.model

    @property
    def language_dim(self) -> int:
        return self.language_backbone.body.language_dim

    # ------------------------------------------------------------------ masks
    def _sub_sentence_layout(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """Encoder mask [B, L, L] (True = may attend) and positions [B, L] that encode
        each sub-sentence like the pretraining text ``SOT sub-sentence``."""
        b, length = input_ids.shape
        specials = torch.tensor(self.special_token_ids, device=input_ids.device)
        is_special = torch.isin(input_ids, specials) & attention_mask.bool()
        # A special token ends its sub-sentence: the block of token i is the number of
        # special tokens before it, so the leading SOT is block 0 on its own.
        block = is_special.long().cumsum(1) - is_special.long()
        same = block[:, :, None] == block[:, None, :]
        idx = torch.arange(length, device=input_ids.device)
        causal = idx[None, :, None] >= idx[None, None, :]
        to_sot = (idx == 0)[None, None, :]
        mask = (same & causal) | to_sot
        start = torch.where(same, idx[None, None, :], length).min(-1).values
        positions = idx[None] - start + (idx[None] > 0).long()
        too_far = (positions >= self.context_length) & attention_mask.bool()
        if bool(too_far.any()):
            row = int(too_far.any(1).nonzero()[0])
            raise ValueError(
                f'{type(self).__name__}: a sub-sentence of prompt {row} is longer than the '
                f'text encoder\'s context length {self.context_length}')
        return mask, positions.clamp(max=self.context_length - 1)

    def _causal_layout(self, input_ids: torch.Tensor):
        length = input_ids.shape[1]
        if length > self.context_length:
            raise ValueError(f'{length} tokens exceed the text encoder\'s context length '
                             f'{self.context_length}')
        mask = torch.ones(length, length, dtype=torch.bool, device=input_ids.device).tril()
        positions = torch.arange(length, device=input_ids.device)
        return mask[None].expand(input_ids.shape[0], -1, -1), positions[None].expand_as(input_ids)

    def encode_tokens(self, input_ids: torch.Tensor, positions: torch.Tensor,
                      mask: torch.Tensor) -> torch.Tensor:
        """Token features [B, L, language_dim] of ids [B, L] with positions [B, L] and
        an attention mask [B, L, L] (True = may attend), through
        ``TextTransformer.forward_features`` (the pretraining forward)."""
        return self.text_encoder.forward_features(
            input_ids, positions, mask[:, None], project=self.project_tokens)

    # ------------------------------------------------------------------ forward
    def forward(self, captions: Sequence[str], **kwargs) -> Dict[str, torch.Tensor]:
        """captions: B prompts -> the dict described in the class docstring."""
        device = self.text_encoder.positional_embedding.device
        tokenized = self.tokenizer(
            list(captions), max_length=self.max_tokens,
            padding='max_length' if self.pad_to_max else 'longest',
            truncation=True, return_tensors='pt').to(device)
        input_ids = tokenized['input_ids']
        token_mask = tokenized['attention_mask'].bool()
        if self.use_sub_sentence_represent:
            enc_mask, positions = self._sub_sentence_layout(input_ids, token_mask)
            masks, position_ids = generate_masks_with_special_tokens_and_transfer_map(
                {'input_ids': input_ids}, self.special_token_ids)
        else:
            enc_mask, positions = self._causal_layout(input_ids)
            masks, position_ids = token_mask, positions
        hidden = self.encode_tokens(input_ids, positions, enc_mask)
        embedded = hidden * token_mask[..., None].to(hidden.dtype) if masks.dim() == 2 else hidden
        return dict(embedded=embedded, masks=masks, hidden=hidden,
                    position_ids=position_ids, text_token_mask=token_mask)

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Pretraining-style text embeddings (EOT pooling, projection) of N texts:
        L2-normalised [N, embed_dim]."""
        device = self.text_encoder.positional_embedding.device
        token_ids = self.text_tokenizer(list(texts)).to(device)
        return F.normalize(self.text_encoder(token_ids), dim=-1)

    def encode_pretraining_text(self, texts: List[str]) -> torch.Tensor:
        """Token features [N, context_length, language_dim] of ``SOT text EOT`` with
        the causal mask, exactly as in pretraining (for checks)."""
        device = self.text_encoder.positional_embedding.device
        token_ids = self.text_tokenizer(list(texts)).to(device)
        mask, positions = self._causal_layout(token_ids)
        return self.encode_tokens(token_ids, positions, mask)
