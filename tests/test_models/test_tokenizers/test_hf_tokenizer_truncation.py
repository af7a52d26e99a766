# Copyright (c) cllip_mm contributors. All rights reserved.
"""HFTokenizer: texts longer than the context keep SOT first and EOT last."""
import pytest
import torch

from cllip_mm.models import HFTokenizer, build_word_level_tokenizer

WORDS = 'a red circle above a blue square left of an orange star on stripes'.split()


@pytest.fixture(scope='module')
def tokenizer(tmp_path_factory):
    root = tmp_path_factory.mktemp('tokenizer')
    build_word_level_tokenizer([' '.join(WORDS)], str(root))
    return HFTokenizer(str(root), context_length=8)


def word_ids(tokenizer, words):
    vocab = tokenizer.tokenizer.get_vocab()
    return [vocab[w] for w in words]


@pytest.mark.parametrize('num_words', [5, 6, 7, 14])
def test_truncation_keeps_the_end_of_text_token(tokenizer, num_words):
    """L = 8: 6 words fit exactly; longer texts keep their first 6 words, then EOT."""
    ids = tokenizer([' '.join(WORDS[:num_words])])
    assert ids.shape == (1, 8) and ids.dtype == torch.long
    kept = min(num_words, 6)
    expected = [tokenizer.sot_token_id, *word_ids(tokenizer, WORDS[:kept]),
                tokenizer.eot_token_id]
    expected += [tokenizer.pad_token_id] * (8 - len(expected))
    assert ids[0].tolist() == expected
    assert int((ids[0] == tokenizer.eot_token_id).sum()) == 1


def test_truncation_with_a_call_time_context_length(tokenizer):
    long_text = ' '.join(WORDS)
    ids = tokenizer([long_text, 'red circle'], context_length=4)
    assert ids.shape == (2, 4)
    assert ids[0].tolist() == [tokenizer.sot_token_id, *word_ids(tokenizer, ['a', 'red']),
                               tokenizer.eot_token_id]
    assert ids[1].tolist() == [tokenizer.sot_token_id, *word_ids(tokenizer, ['red', 'circle']),
                               tokenizer.eot_token_id]


def test_text_encoder_pools_a_truncated_text_at_its_eot(tokenizer):
    """What the EOT is kept for: the tower pools there, so a truncated text is
    embedded like its kept prefix."""
    from cllip_mm.models import TextTransformer
    torch.manual_seed(0)
    encoder = TextTransformer(vocab_size=tokenizer.vocab_size, context_length=8, width=16,
                              layers=1, heads=2, embed_dim=8,
                              eot_token_id=tokenizer.eot_token_id).eval()
    with torch.no_grad():
        long_embed = encoder(tokenizer([' '.join(WORDS)]))
        prefix_embed = encoder(tokenizer([' '.join(WORDS[:6])]))
    torch.testing.assert_close(long_embed, prefix_embed)
