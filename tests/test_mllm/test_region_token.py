# Copyright (c) cllip_mm contributors. All rights reserved.
"""The region token is the Prompter's embedding of the question's box; without region
tokens the model is transformers' LLaVA."""
import mmcv
import pytest
import torch
from mllm_test_config import TINY_LM

from cllip_mm.mllm import (
    ImageLoader,
    InstructionBuilder,
    InstructionDataPreprocessor,
    SequenceEncoder,
    build_instruction_tokenizer,
    build_region_llava,
    corpus_of,
    load_region_records,
    load_vision_source,
)


@pytest.fixture(scope='module')
def records(tiny_region_set):
    return load_region_records('annotations/val.jsonl', tiny_region_set)


@pytest.fixture(scope='module')
def instructions(records):
    return InstructionBuilder(dict(referring=2, grounding=1, relation=1), seed=0).build(records)


@pytest.fixture(scope='module')
def tokenizer(instructions):
    return build_instruction_tokenizer(corpus_of(instructions))


def cloc_pixels(cloc, img_path, size):
    """The image as CLOC's own test pipeline + data preprocessor make it."""
    bgr = mmcv.imresize(mmcv.imread(img_path), (size[1], size[0]))
    return cloc.data_preprocessor(dict(inputs=[torch.from_numpy(bgr).permute(2, 0, 1)]))['inputs']


@pytest.mark.parametrize('which', ['cloc', 'paper'])
def test_region_token_is_the_prompters_embedding_of_the_box(
        which, request, records, instructions, tokenizer):
    config, checkpoint = request.getfixturevalue(f'tiny_{which}_checkpoint')
    source = load_vision_source(config, checkpoint)
    model = build_region_llava(source, tokenizer, lm=TINY_LM, region_token=True, seed=0).eval()
    cloc = source.model
    # one referring question with its <region> token, one image question without
    asked = [i for i in instructions if i.task == 'referring'][:2] + [
        next(i for i in instructions if i.task == 'grounding')]
    encoder = SequenceEncoder(tokenizer, model.num_image_tokens, region_token=True)
    loader = ImageLoader(source.image_processing['size'])
    items = [dict(encoder.prompt(i), image=loader(records[i.image_index].img_path)) for i in asked]
    batch = InstructionDataPreprocessor.from_config(model.config, 'left')(items)
    with torch.no_grad():
        embeds = model.embed_inputs(batch['input_ids'], batch['pixel_values'],
                                    batch['region_boxes'], batch['region_valid'])
        region_at = batch['input_ids'] == model.config.region_token_index
        assert region_at.sum(1).tolist() == [1, 1, 0]
        for b, inst in enumerate(asked[:2]):
            # the pixels are CLOC's own, the box is the one the question's text shows
            pixels = cloc_pixels(cloc, records[inst.image_index].img_path, loader.size)
            assert (pixels - batch['pixel_values'][b:b + 1]).abs().max() <= 1e-5
            box = torch.tensor([inst.boxes], dtype=torch.float32)
            expected = cloc.embed_boxes_of(cloc.image_encoder(pixels), box)  # [1, 1, D]
            # before the projection: the Prompter's (normalised) embedding itself
            _, vit = model.encode_images(batch['pixel_values'][b:b + 1], with_vit=True)
            ours = model.region_features(vit, box)
            assert (ours - expected).abs().max() <= 1e-5
            assert ours.norm(dim=-1).sub(1).abs().max() <= 1e-5
            # after it: what sits at the <region> token of the LM input
            assert (embeds[b][region_at[b]] - model.region_projector(expected[0])).abs().max() <= 1e-5
        # another box of the same image gives another token: the box matters
        other = cloc.embed_boxes_of(cloc.image_encoder(pixels), torch.tensor([[[0, 0, 1, 1.]]]))
        assert (other - expected).abs().max() > 1e-3


def test_without_regions_it_is_llava(tiny_clip_checkpoint, records, instructions, tokenizer):
    """The CLIP tower variant's inputs are LLaVA's own merge of <image> tokens and features
    (the tower's last block, patch tokens only), so the logits are LLaVA's forward's."""
    from transformers import LlavaForConditionalGeneration
    source = load_vision_source(*tiny_clip_checkpoint)
    model = build_region_llava(source, tokenizer, lm=TINY_LM, seed=0).eval()
    assert model.region_sampler is None and model.num_image_tokens == 16  # 32 px / 8
    encoder = SequenceEncoder(tokenizer, model.num_image_tokens, region_token=False)
    loader = ImageLoader(source.image_processing['size'])
    items = [dict(encoder.prompt(i), image=loader(records[i.image_index].img_path))
             for i in instructions[:4]]
    batch = InstructionDataPreprocessor.from_config(model.config, 'left')(items)
    assert '<region>' not in tokenizer.decode(batch['input_ids'].flatten())
    with torch.no_grad():
        ours = model(inputs_embeds=model.embed_inputs(batch['input_ids'], batch['pixel_values']),
                     attention_mask=batch['attention_mask']).logits
        llava = LlavaForConditionalGeneration.forward(
            model, input_ids=batch['input_ids'], pixel_values=batch['pixel_values'],
            attention_mask=batch['attention_mask']).logits
        assert (ours - llava).abs().max() <= 1e-5
        # and the image features are the cllip_mm encoder's last-block patch tokens
        features, _ = model.encode_images(batch['pixel_values'][:1])
        tokens = source.model.image_encoder(batch['pixel_values'][:1]).patch_tokens
        expected = model.model.multi_modal_projector(tokens.flatten(2).transpose(1, 2))
        assert (features - expected).abs().max() <= 1e-5


def test_region_tokens_need_a_sampler_and_one_box_each(
        tiny_cloc_checkpoint, tiny_clip_checkpoint, tokenizer):
    with pytest.raises(ValueError, match='needs a vision source with a Prompter'):
        build_region_llava(load_vision_source(*tiny_clip_checkpoint), tokenizer, lm=TINY_LM,
                           region_token=True)
    source = load_vision_source(*tiny_cloc_checkpoint)
    model = build_region_llava(source, tokenizer, lm=TINY_LM, region_token=True).eval()
    image, region = model.config.image_token_index, model.config.region_token_index
    ids = torch.tensor([[1] + [image] * 16 + [region, 7, region]])
    pixels = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match='boxes per sample'):
        model.embed_inputs(ids, pixels, torch.rand(1, 1, 4))
    with pytest.raises(ValueError, match='no region_boxes'):
        model.embed_inputs(ids, pixels)
    with pytest.raises(ValueError, match='<image> tokens'):
        model.embed_inputs(ids[:, 2:], pixels, torch.rand(1, 2, 4))
    boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.5], [0.2, 0.3, 0.9, 0.8]]])
    with torch.no_grad():
        embeds = model.embed_inputs(ids, pixels, boxes)
        cloc = source.model  # the expected tokens by CLOC's own path
        regions = model.region_projector(cloc.embed_boxes_of(cloc.image_encoder(pixels), boxes))[0]
    # the k-th <region> token holds the k-th box
    assert (embeds[0, 17] - regions[0]).abs().max() <= 1e-5
    assert (embeds[0, 19] - regions[1]).abs().max() <= 1e-5
    assert (regions[0] - regions[1]).abs().max() > 1e-3  # the two boxes' tokens differ
