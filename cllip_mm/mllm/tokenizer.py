# Copyright (c) cllip_mm contributors. All rights reserved.
"""A small word-level tokenizer for the MLLM, built locally from the instruction corpus.

Nothing is downloaded: the vocabulary is the special tokens, the ten digits, the box
punctuation, then the corpus's words by decreasing frequency (ties alphabetically), so
the tokenizer is a deterministic function of the corpus (the role markers ``USER:`` /
``ASSISTANT:`` of the conversation layout are always added). Text is NFKC-normalised and
lowercased; ``tokenizers``' ``Metaspace`` marks word starts with ``▁`` so that decoding
gives the text back (spaces included); digits are split one by one, so a coordinate
``[120,45,560,999]`` is 4 x (1 to 3) digit tokens plus punctuation and any number 0-999
can be written with 10 digit tokens. Words not in the corpus map to ``<unk>``.

It is wrapped in ``transformers.PreTrainedTokenizerFast`` (``save_pretrained`` /
``from_pretrained`` / ``AutoTokenizer`` load it).
"""
from collections import Counter
from typing import Iterable, Optional

from .instructions import REGION_TOKEN

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN = '<pad>', '<s>', '</s>', '<unk>'
IMAGE_TOKEN = '<image>'
#: The conversation's role markers (:mod:`cllip_mm.mllm.data`), always in the vocabulary.
USER, ASSISTANT = 'USER:', 'ASSISTANT:'
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN, IMAGE_TOKEN, REGION_TOKEN)
#: Always in the vocabulary, whatever the corpus: any box can be written.
BOX_SYMBOLS = tuple('0123456789') + ('[', ']', ',', '▁')


def _components():
    from tokenizers import normalizers, pre_tokenizers
    normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Punctuation()])
    return normalizer, pre_tokenizer


def build_instruction_tokenizer(texts: Iterable[str],
                                out_dir: Optional[str] = None,
                                min_frequency: int = 1):
    """Build the tokenizer from ``texts`` (questions and answers).

    Args:
        texts (iterable[str]): The corpus.
        out_dir (str, optional): Where to ``save_pretrained`` it.
        min_frequency (int): Words seen fewer times are left out (-> ``<unk>``).

    Returns:
        transformers.PreTrainedTokenizerFast: With ``pad`` / ``bos`` / ``eos`` / ``unk``
        tokens set and ``<image>`` / ``<region>`` as additional special tokens.
    """
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    normalizer, pre_tokenizer = _components()
    counts: Counter = Counter()
    for text in (f'{USER} {ASSISTANT}', *texts):
        for special in SPECIAL_TOKENS:
            text = text.replace(special, ' ')
        counts.update(w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    fixed = (*SPECIAL_TOKENS, *BOX_SYMBOLS)
    words = sorted((w for w, c in counts.items() if c >= min_frequency and w not in fixed),
                   key=lambda w: (-counts[w], w))
    vocab = {tok: i for i, tok in enumerate((*fixed, *words))}

    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=PAD_TOKEN, bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN, unk_token=UNK_TOKEN,
        additional_special_tokens=[IMAGE_TOKEN, REGION_TOKEN])
    if out_dir is not None:
        wrapped.save_pretrained(out_dir)
    return wrapped


def corpus_of(instructions, region_token: bool = True):
    """The texts of instructions (questions with and without region tokens, answers)."""
    for inst in instructions:
        yield inst.question(region_token=region_token)
        yield inst.answer
