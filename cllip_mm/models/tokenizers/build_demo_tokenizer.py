# Copyright (c) cllip_mm contributors. All rights reserved.
"""Build a small word-level tokenizer from a corpus (the demo / test tokenizer)."""
import os
import os.path as osp
from collections import Counter
from typing import Iterable

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

PAD_TOKEN = '<pad>'
SOT_TOKEN = '<|startoftext|>'
EOT_TOKEN = '<|endoftext|>'
UNK_TOKEN = '<unk>'
#: Special tokens, in id order: ``<pad>`` is 0 so that zero-padding is padding.
SPECIAL_TOKENS = (PAD_TOKEN, SOT_TOKEN, EOT_TOKEN, UNK_TOKEN)


def build_word_level_tokenizer(texts: Iterable[str],
                               out_dir: str,
                               min_frequency: int = 1) -> Tokenizer:
    """Build a word-level tokenizer from ``texts`` and save ``<out_dir>/tokenizer.json``.

    Text is NFKC-normalised and lowercased, split on whitespace and punctuation. The
    vocabulary is the special tokens (ids 0-3: ``<pad>``, ``<|startoftext|>``,
    ``<|endoftext|>``, ``<unk>``) followed by the words seen at least
    ``min_frequency`` times, by decreasing frequency then alphabetically, so the file
    is a deterministic function of the corpus (its multiset of words). Unknown words
    map to ``<unk>``. Encoding with special tokens gives ``SOT words EOT`` (like
    CLIP's tokenizer); padding uses ``<pad>``.

    Returns:
        tokenizers.Tokenizer: The tokenizer that was saved.
    """
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK_TOKEN))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])

    counts: Counter = Counter()
    for text in texts:
        normalized = tokenizer.normalizer.normalize_str(text)
        counts.update(word for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(normalized))
    words = sorted((w for w, c in counts.items()
                    if c >= min_frequency and w not in SPECIAL_TOKENS),
                   key=lambda w: (-counts[w], w))
    vocab = {tok: i for i, tok in enumerate((*SPECIAL_TOKENS, *words))}

    tokenizer.model = models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN)
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f'{SOT_TOKEN} $A {EOT_TOKEN}',
        pair=f'{SOT_TOKEN} $A {EOT_TOKEN} $B:1 {EOT_TOKEN}:1',
        special_tokens=[(SOT_TOKEN, vocab[SOT_TOKEN]), (EOT_TOKEN, vocab[EOT_TOKEN])])
    tokenizer.enable_padding(pad_id=vocab[PAD_TOKEN], pad_token=PAD_TOKEN)

    os.makedirs(out_dir, exist_ok=True)
    tokenizer.save(osp.join(out_dir, 'tokenizer.json'))
    return tokenizer
