# Copyright (c) cllip_mm contributors. All rights reserved.
"""The paper's text tokenizer: T5's SentencePiece tokenizer on lower-cased text.

CLOC (Table A of the paper) tokenises text with T5's tokenizer, lower-cased, into at most
77 tokens. :class:`SentencePieceTokenizer` does that with any T5-style (SentencePiece,
``tokens </s> <pad>...``) tokenizer stored locally; nothing is downloaded. It has the
interface of :class:`~cllip_mm.models.tokenizers.HFTokenizer` (``eot_token_id``,
``pad_token_id``, ``vocab_size``, ``context_length``, ``tok(texts, context_length=None)
-> LongTensor [N, L]``), so a CLOC config swaps one for the other::

    model = dict(
        type='CLOC',
        tokenizer=dict(type='SentencePieceTokenizer', path='data/cloc_demo/tokenizer_t5',
                       context_length=77, lowercase=True),
        ...)

``CLOC`` sets the text encoder's ``vocab_size`` and ``eot_token_id`` (the ``</s>`` id,
where :class:`~cllip_mm.models.TextTransformer` pools) from the tokenizer. ``path`` is a
directory written by ``save_pretrained`` (e.g. ``T5TokenizerFast.from_pretrained(
't5-base').save_pretrained(path)`` done once where the hub is reachable: ``spiece.model``
and / or ``tokenizer.json`` with ``tokenizer_config.json``), a directory holding just a
``tokenizer.json``, or the path of a ``tokenizer.json``. A small one is trained from a
corpus by :func:`~cllip_mm.models.tokenizers.build_sentencepiece_tokenizer`; the
synthetic demo generator writes one to ``<data_root>/tokenizer_t5``::

    from cllip_mm.models.tokenizers import SentencePieceTokenizer, build_sentencepiece_tokenizer
    build_sentencepiece_tokenizer(captions, 'work_dirs/tok_t5', vocab_size=128)
    tok = SentencePieceTokenizer('work_dirs/tok_t5', context_length=77)
    ids = tok(['A red circle on a striped background'])   # [1, 77]: pieces, </s>, <pad>...
"""
from typing import Dict, List, Tuple

from cllip_mm.registry import TASK_UTILS
from cllip_mm.text.build_demo_tokenizer import EOS_TOKEN, PAD_TOKEN
from .hf_tokenizer import BaseHFTokenizer


@TASK_UTILS.register_module()
class SentencePieceTokenizer(BaseHFTokenizer):
    """T5-style tokenisation: ``tokens </s> <pad>...`` in a fixed-length tensor.

    There is no start token (``sot_token_id`` is None). ``eot_token_id`` is the
    tokenizer's eos token (``</s>`` for T5): the text encoder pools there.
    ``pad_token_id`` is the tokenizer's pad token (``<pad>``, 0 for T5), else 0.

    Args:
        path (str): A local directory written by ``save_pretrained`` (loaded with
            ``AutoTokenizer.from_pretrained(path, local_files_only=True)``), a directory
            holding just a ``tokenizer.json``, or the path of a ``tokenizer.json``. A bare
            ``tokenizer.json`` records no eos token: ``</s>`` is used when it is in the
            vocabulary.
        context_length (int): Length L of every returned sequence. Default: 77 (the
            paper's).
        lowercase (bool): Lowercase every text before tokenising (the paper does; T5's
            own tokenizer is case-sensitive). Default: True.
        cache_size (int): Number of distinct (lower-cased) strings whose ids are memoised.

    Call with a list of N strings to get LongTensor [N, L]. Texts longer than L are
    truncated, keeping ``</s>`` last.
    """

    def __init__(self,
                 path: str,
                 context_length: int = 77,
                 lowercase: bool = True,
                 cache_size: int = 65536) -> None:
        self.lowercase = lowercase
        super().__init__(path, context_length=context_length, cache_size=cache_size)

    def _find_special_ids(self, vocab: Dict[str, int]) -> None:
        eos = self.tokenizer.special_tokens_map.get('eos_token')
        if eos is None and EOS_TOKEN in vocab:
            eos = EOS_TOKEN
        if eos is None or str(eos) not in vocab:
            raise ValueError(f'tokenizer at {self.path!r} has no end-of-sequence token (no '
                             f'eos_token in its config and no {EOS_TOKEN!r} in its vocabulary)')
        self.sot_token_id = None
        self.eot_token_id = vocab[str(eos)]
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = vocab.get(PAD_TOKEN, 0)
        self.pad_token_id = pad_id

    def _preprocess(self, text: str) -> str:
        return text.lower() if self.lowercase else text

    def _layout(self, ids: Tuple[int, ...], length: int) -> List[int]:
        return [*ids[:length - 1], self.eot_token_id]

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f', lowercase={self.lowercase})'
