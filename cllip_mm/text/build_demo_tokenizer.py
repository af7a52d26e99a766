# Copyright (c) cllip_mm contributors. All rights reserved.
"""Build small tokenizers from a corpus (the demo / test tokenizers).

* :func:`build_word_level_tokenizer`: a CLIP-layout word-level tokenizer
  (``SOT words EOT``), loaded by :class:`~cllip_mm.models.tokenizers.HFTokenizer`.
* :func:`build_sentencepiece_tokenizer`: a T5-layout Unigram SentencePiece tokenizer
  (``pieces </s>``, the kind of tokenizer the paper uses), loaded by
  :class:`~cllip_mm.models.tokenizers.SentencePieceTokenizer`.
"""
import json
import os
import os.path as osp
from collections import Counter
from typing import Iterable, List, Tuple

from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

PAD_TOKEN = '<pad>'
SOT_TOKEN = '<|startoftext|>'
EOT_TOKEN = '<|endoftext|>'
UNK_TOKEN = '<unk>'
#: Special tokens, in id order: ``<pad>`` is 0 so that zero-padding is padding.
SPECIAL_TOKENS = (PAD_TOKEN, SOT_TOKEN, EOT_TOKEN, UNK_TOKEN)
#: T5's end-of-sequence token (where the text encoder pools).
EOS_TOKEN = '</s>'
#: T5's special tokens, in id order: ``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2.
T5_SPECIAL_TOKENS = (PAD_TOKEN, EOS_TOKEN, UNK_TOKEN)
#: SentencePiece's word-boundary marker.
SPIECE_UNDERLINE = '\u2581'


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


def _canonical_fallback_order(pieces: List[Tuple[str, float]]) -> List[Tuple[str, float]]:
    """Put the trainer's fallback characters in alphabetical order.

    The Unigram trainer appends every character it pruned with the scores
    ``min_score - 1e-4``, ``min_score - 2e-4``, ... in hash-set order, so which
    character gets which of those scores varies from run to run. ``pieces`` is sorted by
    decreasing score; the scores of its longest tail of scores at most 1e-4 apart are
    given to the pieces of that tail in alphabetical order (the set of pieces and the
    scores of the tail are the same in every run).
    """
    if not pieces:
        return pieces
    start = len(pieces) - 1
    while start > 0 and pieces[start - 1][1] - pieces[start][1] < 1e-4 + 1e-7:
        start -= 1
    tail = sorted(piece for piece, _ in pieces[start:])
    return pieces[:start] + [(piece, score) for piece, (_, score) in zip(tail, pieces[start:])]


def build_sentencepiece_tokenizer(texts: Iterable[str],
                                  out_dir: str,
                                  vocab_size: int = 8000,
                                  lowercase: bool = True,
                                  context_length: int = 77,
                                  max_piece_length: int = 16) -> Tokenizer:
    """Train a T5-style Unigram SentencePiece tokenizer on ``texts``; save it to ``out_dir``.

    Like T5's tokenizer: the special tokens are ``<pad>`` = 0, ``</s>`` = 1 and
    ``<unk>`` = 2; text is NMT- and NFKC-normalised with runs of spaces collapsed, split
    into words at spaces (SentencePiece's Metaspace: each word starts with ``▁``) and each
    word cut into Unigram pieces, which never span two words; encoding with special
    tokens appends ``</s>``. With ``lowercase`` (the default; the paper tokenises
    lower-cased text) the normaliser also lowercases. Nothing is downloaded: the model
    is trained here with the ``tokenizers`` library.

    ``out_dir`` gets a ``save_pretrained`` directory (``tokenizer.json`` +
    ``tokenizer_config.json`` naming the eos / pad / unk tokens; no ``spiece.model``, a
    fast tokenizer needs none): ``AutoTokenizer.from_pretrained(out_dir)``,
    ``T5TokenizerFast(tokenizer_file=<out_dir>/tokenizer.json, extra_ids=0)`` and
    :class:`~cllip_mm.models.tokenizers.SentencePieceTokenizer` load it, all with the
    pipeline above. Its ``tokenizer_class`` is the generic fast tokenizer, not
    ``T5Tokenizer``: transformers 5 rebuilds a ``T5Tokenizer``'s normaliser and
    pre-tokeniser from its own defaults, which would drop the lowercasing.

    Training: the ``tokenizers`` Unigram trainer seeds its vocabulary with substrings
    that occur at least twice among the *distinct* words, so on a small corpus (a few
    dozen distinct words, like the demo's) no whole word would ever become a piece. It is
    therefore fed every word occurrence as the unit ``▁word▁word`` (every word counted
    twice, the same for all words), and the few learnt pieces that span the two copies
    (a ``▁`` after their first character) are dropped. This is meant for small corpora:
    it runs a Python loop over the words of the corpus.

    The pieces are stored by decreasing score (rounded to 8 decimals), then
    alphabetically, and the characters the trainer adds back after pruning get their
    scores in alphabetical order, so the files are a deterministic function of the
    corpus (its multiset of words): the trainer's own output depends on hash order.

    Args:
        texts (Iterable[str]): The corpus.
        out_dir (str): Output directory (created).
        vocab_size (int): Largest number of pieces including the 3 special tokens; a
            small corpus gives fewer.
        lowercase (bool): Lowercase in the normaliser. Default: True.
        context_length (int): ``model_max_length`` recorded in the config.
        max_piece_length (int): Longest piece, in characters.

    Returns:
        tokenizers.Tokenizer: The tokenizer that was saved.
    """
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.Nmt(),
        normalizers.NFKC(),
        normalizers.Replace(Regex(' {2,}'), ' '),
        *([normalizers.Lowercase()] if lowercase else [])
    ])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=SPIECE_UNDERLINE, prepend_scheme='always')
    tokenizer.decoder = decoders.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme='always')

    counts: Counter = Counter()
    for text in texts:
        normalized = tokenizer.normalizer.normalize_str(text)
        counts.update(word for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(normalized)
                      if word.strip(SPIECE_UNDERLINE))
    units = (word + word for word, count in sorted(counts.items()) for _ in range(count))
    trained = Tokenizer(models.Unigram())  # no normaliser / pre-tokeniser: a unit is a unit
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=list(T5_SPECIAL_TOKENS), unk_token=UNK_TOKEN,
        max_piece_length=max_piece_length, show_progress=False)
    trained.train_from_iterator(units, trainer=trainer)

    pieces = json.loads(trained.to_str())['model']['vocab']
    specials = [(piece, 0.0) for piece in T5_SPECIAL_TOKENS]
    assert [piece for piece, _ in pieces[:len(specials)]] == list(T5_SPECIAL_TOKENS), pieces[:3]
    learnt = sorted(((piece, round(score, 8)) for piece, score in pieces[len(specials):]
                     if SPIECE_UNDERLINE not in piece[1:]),
                    key=lambda p: (-p[1], p[0]))
    learnt = _canonical_fallback_order(learnt)
    tokenizer.model = models.Unigram(
        specials + learnt, unk_id=T5_SPECIAL_TOKENS.index(UNK_TOKEN), byte_fallback=False)
    tokenizer.add_special_tokens(list(T5_SPECIAL_TOKENS))
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f'$A {EOS_TOKEN}',
        pair=f'$A {EOS_TOKEN} $B:1 {EOS_TOKEN}:1',
        special_tokens=[(EOS_TOKEN, T5_SPECIAL_TOKENS.index(EOS_TOKEN))])
    tokenizer.enable_padding(pad_id=T5_SPECIAL_TOKENS.index(PAD_TOKEN), pad_token=PAD_TOKEN)

    os.makedirs(out_dir, exist_ok=True)
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=EOS_TOKEN, unk_token=UNK_TOKEN,
        pad_token=PAD_TOKEN, model_max_length=context_length).save_pretrained(out_dir)
    tokenizer.save(osp.join(out_dir, 'tokenizer.json'))  # exactly this pipeline
    return tokenizer
