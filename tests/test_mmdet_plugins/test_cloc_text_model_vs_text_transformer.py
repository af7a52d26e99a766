# Copyright (c) cllip_mm contributors. All rights reserved.
"""The mmdet language model ClocTextModel against a separate TextTransformer holding the
same weights (the pretraining tower), not against its own methods."""
import pytest
import torch

from cllip_mm.mmdet_plugins import ClocTextModel
from cllip_mm.models import HFTokenizer, TextTransformer, build_word_level_tokenizer

TEXT_ENCODER = dict(type='TextTransformer', context_length=16, width=32, layers=2, heads=4,
                    embed_dim=24)


@pytest.fixture(scope='module')
def tokenizer_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tokenizer'))
    build_word_level_tokenizer(['a red circle. a blue square? green star on stripes.'], root)
    return root


def make_models(tokenizer_dir, **kwargs):
    """ClocTextModel with noisy random weights, and a TextTransformer loaded with them."""
    torch.manual_seed(0)
    model = ClocTextModel(tokenizer_path=tokenizer_dir, text_encoder=TEXT_ENCODER, **kwargs)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    tokenizer = HFTokenizer(tokenizer_dir, context_length=TEXT_ENCODER['context_length'])
    cfg = {k: v for k, v in TEXT_ENCODER.items() if k != 'type'}
    tower = TextTransformer(vocab_size=tokenizer.vocab_size,
                            eot_token_id=tokenizer.eot_token_id, **cfg)
    tower.load_state_dict(model.text_encoder.state_dict())
    return model.eval(), tower.eval(), tokenizer


def test_causal_prompt_matches_the_tower(tokenizer_dir):
    model, tower, tokenizer = make_models(tokenizer_dir, max_tokens=16,
                                          use_sub_sentence_represent=False)
    texts = ['a red circle on stripes', 'green star']
    with torch.no_grad():
        out = model(texts)
        ids = tokenizer(texts)
        features = tower.forward_features(ids)
    length = out['hidden'].shape[1]
    assert length == 7  # SOT a red circle on stripes EOT
    mask = out['text_token_mask']
    assert mask.sum(1).tolist() == [7, 4]
    torch.testing.assert_close(out['hidden'][mask], features[:, :length][mask],
                               atol=1e-5, rtol=1e-5)


def test_projected_eot_token_is_the_pretraining_text_embedding(tokenizer_dir):
    model, tower, tokenizer = make_models(tokenizer_dir, max_tokens=16, project_tokens=True,
                                          use_sub_sentence_represent=False)
    texts = ['a red circle on stripes', 'green star']
    with torch.no_grad():
        out = model(texts)
        embeds = tower(tokenizer(texts))  # pooled at EOT, projected: [2, 24]
    assert model.language_dim == 24
    eot = out['text_token_mask'].sum(1) - 1
    torch.testing.assert_close(out['hidden'][torch.arange(2), eot], embeds,
                               atol=1e-5, rtol=1e-5)


def test_each_sub_sentence_is_encoded_like_a_pretraining_text(tokenizer_dir):
    """'SOT a red circle . green star ? EOT': the tokens of each sub-sentence equal the
    tower's features of that phrase alone (``SOT phrase``: positions 1, 2, ...)."""
    model, tower, tokenizer = make_models(tokenizer_dir)
    with torch.no_grad():
        hidden = model(['a red circle. green star?'])['hidden'][0]
        first = tower.forward_features(tokenizer(['a red circle.']))[0]
        second = tower.forward_features(tokenizer(['green star?']))[0]
    assert hidden.shape[0] == 9
    torch.testing.assert_close(hidden[0:5], first[0:5], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(hidden[5:8], second[1:4], atol=1e-5, rtol=1e-5)
