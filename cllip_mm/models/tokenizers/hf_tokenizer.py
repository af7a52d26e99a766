# Copyright (c) cllip_mm contributors. All rights reserved.
"""Tokenizers from local Hugging Face files (nothing is downloaded)."""
import os.path as osp
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

import torch

from cllip_mm.registry import TASK_UTILS

SOT_TOKEN = '<|startoftext|>'
EOT_TOKEN = '<|endoftext|>'


@TASK_UTILS.register_module()
class HFTokenizer:
    """CLIP-style tokenisation: ``[SOT] tokens [EOT] pad...`` in a fixed-length tensor.

    Args:
        path (str): A local directory holding either a Hugging Face tokenizer saved with
            ``save_pretrained`` (e.g. a ``CLIPTokenizer``: ``vocab.json``, ``merges.txt``,
            ``tokenizer_config.json``) or just a ``tokenizer.json`` (the demo tokenizer
            built by ``cllip_mm.models.tokenizers.build_word_level_tokenizer``); or the
            path of a ``tokenizer.json`` file.
        context_length (int): Length L of every returned sequence.
        cache_size (int): Number of distinct strings whose ids are memoised; phrases
            repeat a lot, so tokenising them once saves time in every step.

    Call with a list of N strings to get LongTensor [N, L]. Texts longer than L are
    truncated, keeping the EOT token last. ``eot_token_id`` tells the text encoder where
    to pool.
    """

    def __init__(self, path: str, context_length: int = 77, cache_size: int = 65536) -> None:
        from transformers import AutoTokenizer, PreTrainedTokenizerFast
        tokenizer_file = path if path.endswith('.json') else osp.join(path, 'tokenizer.json')
        has_hf_config = osp.isdir(path) and osp.exists(osp.join(path, 'tokenizer_config.json'))
        if has_hf_config:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        elif osp.isfile(tokenizer_file):
            self.tokenizer = PreTrainedTokenizerFast(tokenizer_file=tokenizer_file)
        else:
            raise FileNotFoundError(
                f'no tokenizer at {path!r}: expected a save_pretrained directory '
                '(tokenizer_config.json) or a tokenizer.json')
        self.path = path
        self.context_length = context_length
        vocab = self.tokenizer.get_vocab()
        missing = [tok for tok in (SOT_TOKEN, EOT_TOKEN) if tok not in vocab]
        if missing:
            raise ValueError(f'tokenizer at {path!r} lacks the special tokens {missing}')
        self.sot_token_id = vocab[SOT_TOKEN]
        self.eot_token_id = vocab[EOT_TOKEN]
        pad_id = self.tokenizer.pad_token_id
        self.pad_token_id = 0 if pad_id is None else pad_id
        self.vocab_size = len(self.tokenizer)
        self._encode_one = lru_cache(maxsize=cache_size)(self._encode_uncached)

    def _encode_uncached(self, text: str) -> Tuple[int, ...]:
        return tuple(self.tokenizer.encode(text, add_special_tokens=False))

    def __call__(self, texts: Sequence[str], context_length: Optional[int] = None) -> torch.Tensor:
        """texts: N strings -> LongTensor [N, L] (L = ``context_length`` or the default)."""
        length = context_length or self.context_length
        if isinstance(texts, str):
            texts = [texts]
        out = torch.full((len(texts), length), self.pad_token_id, dtype=torch.long)
        for row, text in enumerate(texts):
            ids: List[int] = [self.sot_token_id, *self._encode_one(text)[:length - 2], self.eot_token_id]
            out[row, :len(ids)] = torch.tensor(ids)
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(path={self.path!r}, '
                f'context_length={self.context_length}, vocab_size={self.vocab_size})')
