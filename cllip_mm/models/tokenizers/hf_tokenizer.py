# Copyright (c) cllip_mm contributors. All rights reserved.
"""Tokenizers from local Hugging Face files (nothing is downloaded)."""
import os.path as osp
from abc import ABCMeta, abstractmethod
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from cllip_mm.registry import TASK_UTILS

SOT_TOKEN = '<|startoftext|>'
EOT_TOKEN = '<|endoftext|>'


class BaseHFTokenizer(metaclass=ABCMeta):
    """What the tokenizers on local Hugging Face files share: loading, the fixed-length
    ``LongTensor [N, L]`` output and the memoised encoding of each distinct string.

    A subclass fills in :meth:`_find_special_ids` (set ``eot_token_id``, ``pad_token_id``
    and whatever else its layout needs, or raise) and :meth:`_layout` (the ids of one text,
    at most ``length`` of them, from its ids without special tokens).

    Args:
        path (str): A local ``save_pretrained`` directory (``tokenizer_config.json``; loaded
            with ``AutoTokenizer.from_pretrained(path, local_files_only=True)``), a
            directory holding just a ``tokenizer.json``, or the path of a ``tokenizer.json``
            (loaded as a ``PreTrainedTokenizerFast``).
        context_length (int): Length L of every returned sequence.
        cache_size (int): Number of distinct strings whose ids are memoised.
    """

    def __init__(self, path: str, context_length: int = 77, cache_size: int = 65536) -> None:
        self.tokenizer = self._load(path)
        self.path = path
        self.context_length = context_length
        self._find_special_ids(self.tokenizer.get_vocab())
        self.vocab_size = len(self.tokenizer)
        self._encode_one = lru_cache(maxsize=cache_size)(self._encode_uncached)

    @staticmethod
    def _load(path: str):
        from transformers import AutoTokenizer, PreTrainedTokenizerFast
        tokenizer_file = path if path.endswith('.json') else osp.join(path, 'tokenizer.json')
        has_hf_config = osp.isdir(path) and osp.exists(osp.join(path, 'tokenizer_config.json'))
        if has_hf_config:
            return AutoTokenizer.from_pretrained(path, local_files_only=True)
        if osp.isfile(tokenizer_file):
            return PreTrainedTokenizerFast(tokenizer_file=tokenizer_file)
        raise FileNotFoundError(
            f'no tokenizer at {path!r}: expected a save_pretrained directory '
            '(tokenizer_config.json) or a tokenizer.json')

    @abstractmethod
    def _find_special_ids(self, vocab: Dict[str, int]) -> None:
        """Set ``eot_token_id``, ``pad_token_id`` (and the start id, if any) from ``vocab``."""

    @abstractmethod
    def _layout(self, ids: Tuple[int, ...], length: int) -> List[int]:
        """The ids of one text, special tokens added, at most ``length`` long."""

    def _encode_uncached(self, text: str) -> Tuple[int, ...]:
        return tuple(self.tokenizer.encode(text, add_special_tokens=False))

    def _preprocess(self, text: str) -> str:
        """The text that is tokenised (and memoised) for ``text``."""
        return text

    def __call__(self, texts: Sequence[str], context_length: Optional[int] = None) -> torch.Tensor:
        """texts: N strings -> LongTensor [N, L] (L = ``context_length`` or the default)."""
        length = context_length or self.context_length
        if isinstance(texts, str):
            texts = [texts]
        out = torch.full((len(texts), length), self.pad_token_id, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = self._layout(self._encode_one(self._preprocess(text)), length)
            out[row, :len(ids)] = torch.tensor(ids)
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(path={self.path!r}, '
                f'context_length={self.context_length}, vocab_size={self.vocab_size})')


@TASK_UTILS.register_module()
class HFTokenizer(BaseHFTokenizer):
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

    def _find_special_ids(self, vocab: Dict[str, int]) -> None:
        missing = [tok for tok in (SOT_TOKEN, EOT_TOKEN) if tok not in vocab]
        if missing:
            raise ValueError(f'tokenizer at {self.path!r} lacks the special tokens {missing}')
        self.sot_token_id = vocab[SOT_TOKEN]
        self.eot_token_id = vocab[EOT_TOKEN]
        pad_id = self.tokenizer.pad_token_id
        self.pad_token_id = 0 if pad_id is None else pad_id

    def _layout(self, ids: Tuple[int, ...], length: int) -> List[int]:
        return [self.sot_token_id, *ids[:length - 2], self.eot_token_id]
