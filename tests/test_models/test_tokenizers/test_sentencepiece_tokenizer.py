# Copyright (c) cllip_mm contributors. All rights reserved.
"""SentencePieceTokenizer (the paper's T5 / lower-cased tokenisation) and its builder."""
import json
import os.path as osp
import shutil

import pytest
import torch

from cllip_mm.models.tokenizers import (
    SentencePieceTokenizer,
    build_sentencepiece_tokenizer,
    build_word_level_tokenizer,
)

TEXTS = ['a red circle above a blue square', 'a red star left of an orange triangle',
         'a blue circle on a striped background', 'red circle, blue square and green star',
         'a photo of a red circle.', 'there is a blue square in the scene.']
WORDS = 'a red circle above a blue square left of an orange triangle on a striped background'
U = '\u2581'  # SentencePiece's word-start marker


@pytest.fixture(scope='module')
def tok_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('t5_tokenizer'))
    build_sentencepiece_tokenizer(TEXTS, root, vocab_size=64)
    return root


@pytest.fixture(scope='module')
def tok(tok_dir):
    return SentencePieceTokenizer(tok_dir, context_length=8)


def pieces(tokenizer, text):
    """Ids of ``text`` without special tokens, from the wrapped transformers tokenizer."""
    return tokenizer.tokenizer.encode(text.lower(), add_special_tokens=False)


def test_builder_layout_special_ids_and_pieces(tok_dir):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, T5TokenizerFast
    assert osp.isfile(osp.join(tok_dir, 'tokenizer.json'))
    config = json.load(open(osp.join(tok_dir, 'tokenizer_config.json')))
    assert config['eos_token'] == '</s>' and config['pad_token'] == '<pad>'
    assert config['model_max_length'] == 77
    raw = Tokenizer.from_file(osp.join(tok_dir, 'tokenizer.json'))
    assert json.loads(raw.to_str())['model']['type'] == 'Unigram'
    assert [raw.token_to_id(t) for t in ('<pad>', '</s>', '<unk>')] == [0, 1, 2]
    # pieces never span two words, and whole frequent words are pieces
    vocab = raw.get_vocab()
    assert not [p for p in vocab if U in p[1:]]
    assert {U + 'red', U + 'circle', U + 'blue', U + 'square'} <= set(vocab)
    assert len(vocab) <= 64
    # T5's layout from transformers too: pieces then </s>, lower-cased by the normaliser
    for hf in (AutoTokenizer.from_pretrained(tok_dir, local_files_only=True),
               T5TokenizerFast(tokenizer_file=osp.join(tok_dir, 'tokenizer.json'), extra_ids=0)):
        assert len(hf) == len(vocab) and hf.eos_token_id == 1 and hf.pad_token_id == 0
        ids = hf.encode('Red Circle')
        assert hf.convert_ids_to_tokens(ids) == [U + 'red', U + 'circle', '</s>']


def test_builder_pieces_never_span_words(tmp_path):
    """On a corpus like the demo's (a few dozen distinct words), whole words become pieces
    and none of the trainer's pieces that span the two copies of a word (such as
    'red▁') is kept."""
    from cllip_mm.datasets.synthetic import BACKGROUNDS, all_phrases

    def art(word):
        return 'an' if word[0] in 'aeiou' else 'a'

    phrases = all_phrases()
    texts = []
    for i in range(200):
        objects = [phrases[i % 32], phrases[(3 * i + 1) % 32], phrases[(7 * i + 5) % 32]]
        bg = BACKGROUNDS[i % 3]
        texts.append(', '.join(f'{art(o)} {o}' for o in objects[:2]) +
                     f' and {art(objects[2])} {objects[2]} on {art(bg)} {bg} background')
    tok = build_sentencepiece_tokenizer(texts, str(tmp_path), vocab_size=128)
    vocab = tok.get_vocab()
    assert not [p for p in vocab if U in p[1:]]
    assert {U + w for w in ('red', 'yellow', 'circle', 'triangle', 'and', 'background')} <= \
        set(vocab)
    assert tok.encode('a yellow triangle').tokens[-3:] == [U + 'yellow', U + 'triangle', '</s>']


def test_builder_is_deterministic(tmp_path):
    """Same files for the same multiset of texts, whatever the order and the run (the
    trainer's own output depends on hash order)."""
    for i, texts in enumerate((TEXTS, TEXTS[::-1], TEXTS, sorted(TEXTS))):
        build_sentencepiece_tokenizer(texts, str(tmp_path / str(i)), vocab_size=64)
    for name in ('tokenizer.json', 'tokenizer_config.json'):
        contents = {(tmp_path / str(i) / name).read_bytes() for i in range(4)}
        assert len(contents) == 1, name


def test_special_ids_and_attributes(tok):
    assert tok.eot_token_id == 1 and tok.pad_token_id == 0 and tok.sot_token_id is None
    assert tok.vocab_size == len(tok.tokenizer.get_vocab()) and tok.context_length == 8
    assert 'SentencePieceTokenizer' in repr(tok) and 'lowercase=True' in repr(tok)


def test_eos_last_then_padding(tok):
    ids = tok(['red circle', 'a blue square'])
    assert ids.shape == (2, 8) and ids.dtype == torch.long
    for row, text in zip(ids.tolist(), ['red circle', 'a blue square']):
        expected = [*pieces(tok, text), tok.eot_token_id]
        assert row == expected + [tok.pad_token_id] * (8 - len(expected))
        assert row.count(tok.eot_token_id) == 1
    assert tok(['']).tolist() == [[tok.eot_token_id] + [tok.pad_token_id] * 7]
    torch.testing.assert_close(tok('red circle'), ids[:1])  # one string is a batch of one


def test_lowercasing(tmp_path, tok):
    """The texts are lowercased before tokenising: against a case-sensitive tokenizer
    (like T5's own) 'Red CIRCLE' and 'red circle' give the same ids with lowercase=True
    and different ones with lowercase=False."""
    root = str(tmp_path / 'cased')
    build_sentencepiece_tokenizer(TEXTS, root, vocab_size=64, lowercase=False)
    lower = SentencePieceTokenizer(root, context_length=8)
    cased = SentencePieceTokenizer(root, context_length=8, lowercase=False)
    assert lower.lowercase and not cased.lowercase
    assert lower(['Red CIRCLE']).tolist() == lower(['red circle']).tolist()
    assert cased(['Red CIRCLE']).tolist() != cased(['red circle']).tolist()
    assert cased(['red circle']).tolist() == lower(['red circle']).tolist()
    # the builder's default tokenizer lowercases in its normaliser as well
    assert tok(['Red CIRCLE']).tolist() == tok(['red circle']).tolist()


@pytest.mark.parametrize('num_words', [3, 5, 8, 15])
def test_truncation_keeps_eos_last(tok, num_words):
    text = ' '.join(WORDS.split()[:num_words])
    full = pieces(tok, text)
    ids = tok([text])[0].tolist()
    assert len(ids) == 8
    if len(full) < 8:
        assert ids[:len(full) + 1] == [*full, tok.eot_token_id]
    else:  # truncated: the first 7 pieces, then </s> at the last position
        assert ids == [*full[:7], tok.eot_token_id]
    assert ids.count(tok.eot_token_id) == 1


def test_truncation_with_a_call_time_context_length(tok):
    ids = tok([WORDS, 'red circle'], context_length=3)
    assert ids.shape == (2, 3)
    assert ids[0].tolist() == [*pieces(tok, WORDS)[:2], tok.eot_token_id]
    assert ids[1].tolist() == [*pieces(tok, 'red circle'), tok.eot_token_id]


def test_directory_and_bare_tokenizer_json_give_the_same_ids(tok_dir, tok, tmp_path):
    bare_dir = tmp_path / 'bare'
    bare_dir.mkdir()
    shutil.copy(osp.join(tok_dir, 'tokenizer.json'), bare_dir / 'tokenizer.json')
    texts = TEXTS + [WORDS, 'A Purple Hexagon', 'Red  CIRCLE']
    for lowercase in (True, False):  # without lowercase=True: the same normaliser
        expected = SentencePieceTokenizer(tok_dir, context_length=8, lowercase=lowercase)(texts)
        if lowercase:
            assert torch.equal(expected, tok(texts))
        for path in (str(bare_dir), str(bare_dir / 'tokenizer.json')):
            other = SentencePieceTokenizer(path, context_length=8, lowercase=lowercase)
            assert (other.eot_token_id, other.pad_token_id, other.vocab_size) == \
                (tok.eot_token_id, tok.pad_token_id, tok.vocab_size)
            assert torch.equal(other(texts), expected)


def test_errors_name_the_path(tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match='nowhere'):
        SentencePieceTokenizer(missing)
    # a CLIP-layout tokenizer has no eos token
    clip_dir = str(tmp_path / 'clip_layout')
    build_word_level_tokenizer(TEXTS, clip_dir)
    with pytest.raises(ValueError, match='clip_layout.*end-of-sequence'):
        SentencePieceTokenizer(clip_dir)


def test_registered_in_task_utils(tok_dir):
    from cllip_mm.registry import TASK_UTILS
    built = TASK_UTILS.build(dict(type='SentencePieceTokenizer', path=tok_dir, context_length=5))
    assert isinstance(built, SentencePieceTokenizer) and built(['red']).shape == (1, 5)


def test_text_encoder_pools_at_eos(tok):
    """With eot_token_id = </s> the tower pools at the end of the text, so a text's
    embedding does not depend on the padding length (even without trimming padding)."""
    from cllip_mm.models import TextTransformer
    torch.manual_seed(0)
    encoder = TextTransformer(vocab_size=tok.vocab_size, context_length=16, width=16, layers=1,
                              heads=2, embed_dim=8, eot_token_id=tok.eot_token_id,
                              trim_padding=False).eval()
    texts = ['red circle', 'a blue square', WORDS]
    assert [len(pieces(tok, t)) < 7 for t in texts] == [True, True, False]
    short, long = tok(texts, context_length=8), tok(texts, context_length=16)
    for ids, length in ((short, 8), (long, 16)):
        assert encoder.pool_index(ids).tolist() == [min(len(pieces(tok, t)), length - 1)
                                                    for t in texts]
    with torch.no_grad():
        torch.testing.assert_close(encoder(short)[:2], encoder(long)[:2])
        # the truncated text is embedded like its kept prefix, ended by </s>
        prefix = torch.tensor([[*pieces(tok, WORDS)[:7], tok.eot_token_id] + [0] * 8])
        torch.testing.assert_close(encoder(short)[2:], encoder(prefix))


def test_cloc_from_config_with_the_demo_t5_tokenizer(make_tiny_cloc_cfg, tiny_region_set):
    """The synthetic generator writes <data_root>/tokenizer_t5; CLOC built with it takes
    the text encoder's vocab_size and eot_token_id from it and trains on the demo set."""
    from mmengine.dataset import pseudo_collate

    from cllip_mm.registry import DATASETS, MODELS
    from cllip_mm.utils import register_all_modules
    register_all_modules()
    tokenizer_dir = osp.join(tiny_region_set, 'tokenizer_t5')
    assert osp.isfile(osp.join(tokenizer_dir, 'tokenizer.json'))
    assert osp.isfile(osp.join(tiny_region_set, 'tokenizer', 'tokenizer.json'))  # kept

    cfg = make_tiny_cloc_cfg()
    cfg.model.tokenizer = dict(type='SentencePieceTokenizer', path=tokenizer_dir,
                               context_length=40)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    tokenizer = model.tokenizer
    assert isinstance(tokenizer, SentencePieceTokenizer)
    assert model.text_encoder.eot_token_id == tokenizer.eot_token_id == 1
    assert model.text_encoder.vocab_size == tokenizer.vocab_size

    train_set = DATASETS.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([train_set[i] for i in range(8)])
    unk = tokenizer.tokenizer.unk_token_id
    for sample in batch['data_samples']:  # the demo corpus is in vocabulary
        assert unk not in tokenizer([sample.caption]).tolist()[0]
        assert unk not in tokenizer(list(sample.gt_regions.phrases)).flatten().tolist()
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert model.text_encoder.token_embedding.weight.grad.abs().sum() > 0
