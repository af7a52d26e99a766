# Copyright (c) cllip_mm contributors. All rights reserved.
import json

from tokenizers import Tokenizer

from cllip_mm.models.tokenizers import build_word_level_tokenizer

TEXTS = ['A red circle, a blue square and a red star.', 'a Red circle on a mat']


def test_build_save_and_encode(tmp_path):
    tok = build_word_level_tokenizer(TEXTS, str(tmp_path))
    loaded = Tokenizer.from_file(str(tmp_path / 'tokenizer.json'))
    for t in (tok, loaded):
        assert [t.token_to_id(s) for s in
                ('<pad>', '<|startoftext|>', '<|endoftext|>', '<unk>')] == [0, 1, 2, 3]
        # lower-cased, split on whitespace and punctuation, wrapped in SOT / EOT
        enc = t.encode('A RED circle, blue.')
        assert enc.tokens == ['<|startoftext|>', 'a', 'red', 'circle', ',', 'blue', '.',
                              '<|endoftext|>']
        assert t.encode('green circle', add_special_tokens=False).tokens == \
            ['<unk>', 'circle']
    # words by decreasing frequency ('a': 5, 'red': 3, 'circle': 2), then alphabetically
    vocab = loaded.get_vocab()
    assert vocab['a'] == 4 and vocab['red'] == 5 and vocab['circle'] == 6
    assert loaded.get_vocab_size() == 4 + len({'a', 'red', 'circle', ',', 'blue', 'square',
                                               'and', 'star', '.', 'on', 'mat'})


def test_deterministic_and_min_frequency(tmp_path):
    build_word_level_tokenizer(TEXTS, str(tmp_path / 'a'))
    build_word_level_tokenizer(TEXTS[::-1], str(tmp_path / 'b'))
    assert (tmp_path / 'a' / 'tokenizer.json').read_bytes() == \
        (tmp_path / 'b' / 'tokenizer.json').read_bytes()
    tok = build_word_level_tokenizer(TEXTS, str(tmp_path / 'c'), min_frequency=2)
    assert set(tok.get_vocab()) == {'<pad>', '<|startoftext|>', '<|endoftext|>', '<unk>',
                                    'a', 'red', 'circle'}


def test_loads_as_a_transformers_fast_tokenizer(tmp_path):
    """The pad token is recorded in the file, so wrappers find it."""
    from transformers import PreTrainedTokenizerFast
    build_word_level_tokenizer(TEXTS, str(tmp_path))
    hf = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / 'tokenizer.json'))
    assert hf.pad_token == '<pad>' and hf.pad_token_id == 0
    assert hf.encode('red star', add_special_tokens=False) == [5, hf.get_vocab()['star']]
    assert json.loads((tmp_path / 'tokenizer.json').read_text())['model']['type'] == \
        'WordLevel'
