import os.path as osp

import pytest
import torch
from mmdet.models.detectors.glip import create_positive_map

from cllip_mm.mmdet_plugins import ClocTextModel

TEXT_ENCODER = dict(type='TextTransformer', context_length=40, width=128, layers=3, heads=4,
                    embed_dim=128)


@pytest.fixture(scope='module')
def text_model(synthetic_root, converted_checkpoint):
    model = ClocTextModel(
        tokenizer_path=osp.join(synthetic_root, 'tokenizer'), text_encoder=TEXT_ENCODER,
        init_cfg=dict(type='Pretrained', checkpoint=converted_checkpoint,
                      prefix='language_model.'))
    model.init_weights()
    return model.eval()


def test_bert_model_interface(text_model):
    out = text_model(['red circle. blue square.', 'green star.'])
    b, length = out['text_token_mask'].shape
    assert b == 2 and length == 8  # SOT red circle . blue square . EOT
    assert out['embedded'].shape == (2, length, text_model.language_dim) == out['hidden'].shape
    assert out['masks'].shape == (2, length, length) and out['masks'].dtype == torch.bool
    assert out['position_ids'].shape == (2, length)
    assert out['text_token_mask'][1].tolist() == [True] * 5 + [False] * 3
    # What Grounding DINO reads.
    assert text_model.language_backbone.body.language_dim == 128
    assert text_model.max_tokens == 256 and text_model.pad_to_max is False
    # BERT-style sub-sentence mask: 'blue square .' attend to each other only.
    assert out['masks'][0, 4:7, 4:7].all() and not out['masks'][0, 4:7, 1:4].any()
    assert out['position_ids'][0].tolist() == [0, 0, 1, 2, 0, 1, 2, 0]


def test_sub_sentences_are_encoded_like_pretraining_phrases(text_model, tiny_cloc):
    with torch.no_grad():
        out = text_model(['red circle. blue square.'])['hidden'][0]
        alone = text_model.encode_pretraining_text(['red circle.', 'blue square.'])
    # SOT red circle . -> positions 0..3 of "SOT red circle . EOT" encoded alone.
    assert torch.allclose(out[0:4], alone[0, 0:4], atol=1e-5)
    assert torch.allclose(out[4:7], alone[1, 1:4], atol=1e-5)
    # The pooled embedding is the pretraining one.
    assert torch.allclose(text_model.embed_texts(['red circle']),
                          tiny_cloc.embed_texts(['red circle']), atol=1e-6)


def test_prompts_longer_than_the_context(text_model, synthetic_root):
    with open(osp.join(synthetic_root, 'classes.txt')) as f:
        classes = [line.strip() for line in f if line.strip()]
    prompt = '. '.join(classes) + '.'
    with torch.no_grad():
        out = text_model([prompt])
    assert out['embedded'].shape[1] == 2 + 3 * len(classes) > text_model.context_length
    assert torch.isfinite(out['embedded']).all()


def test_causal_mode(synthetic_root, converted_checkpoint, text_model):
    model = ClocTextModel(tokenizer_path=osp.join(synthetic_root, 'tokenizer'),
                          text_encoder=TEXT_ENCODER, max_tokens=40,
                          use_sub_sentence_represent=False)
    model.load_state_dict(text_model.state_dict())
    with torch.no_grad():
        out = model(['red circle on a striped background'])
        ref = model.encode_pretraining_text(['red circle on a striped background'])
    assert out['masks'].shape == out['text_token_mask'].shape
    assert torch.allclose(out['hidden'][0], ref[0, :out['hidden'].shape[1]], atol=1e-5)
    with pytest.raises(ValueError, match='context length'):
        ClocTextModel(tokenizer_path=osp.join(synthetic_root, 'tokenizer'),
                      text_encoder=TEXT_ENCODER, use_sub_sentence_represent=False)


def test_tokens_positive_map_like_grounding_dino(text_model):
    caption = 'red circle. blue square. '
    tokenized = text_model.tokenizer([caption], padding='longest', return_tensors='pt')
    positive = create_positive_map(tokenized, [[[0, 10]], [[12, 23]]], max_num_entities=256)
    assert positive.shape == (2, 256)
    assert positive[0].nonzero().flatten().tolist() == [1, 2]
    assert positive[1].nonzero().flatten().tolist() == [4, 5]


def test_errors(synthetic_root):
    tok = osp.join(synthetic_root, 'tokenizer')
    with pytest.raises(ValueError, match='single token'):
        ClocTextModel(tokenizer_path=tok, text_encoder=TEXT_ENCODER,
                      special_tokens_list=['red circle'])
    model = ClocTextModel(tokenizer_path=tok, text_encoder=dict(TEXT_ENCODER, context_length=4))
    with pytest.raises(ValueError, match='sub-sentence of prompt 1'):
        model(['red.', 'a red circle and a blue square.'])
