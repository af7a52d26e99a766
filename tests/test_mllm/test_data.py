# Copyright (c) cllip_mm contributors. All rights reserved.
"""Token sequences and batches: only answers are labelled, boxes ride with <region> tokens."""
import pytest
import torch

from cllip_mm.mllm import (
    ConversationDataset,
    ImageLoader,
    InstructionBuilder,
    InstructionDataPreprocessor,
    SequenceEncoder,
    build_instruction_tokenizer,
    corpus_of,
    load_region_records,
)
from cllip_mm.mllm.data import IGNORE_INDEX

MEAN, STD = [120.0, 110.0, 100.0], [60.0, 50.0, 40.0]


@pytest.fixture(scope='module')
def setup(tiny_region_set):
    records = load_region_records('annotations/train.jsonl', tiny_region_set)
    instructions = InstructionBuilder(dict(referring=2, grounding=1, relation=1), seed=0).build(records)
    tokenizer = build_instruction_tokenizer(corpus_of(instructions))
    return records, instructions, tokenizer


@pytest.mark.parametrize('region_token', [False, True])
def test_only_the_answers_are_labelled(setup, region_token):
    records, instructions, tokenizer = setup
    encoder = SequenceEncoder(tokenizer, num_image_tokens=16, region_token=region_token)
    dataset = ConversationDataset(records, instructions, encoder, ImageLoader((32, 32)),
                                  turns_per_sample=3, seed=0)
    assert sum(len(s) for s in dataset.samples) == len(instructions)
    assert max(len(s) for s in dataset.samples) == 3
    item = dataset[0]
    turns = dataset.samples[0]
    ids, labels = item['input_ids'], item['labels']
    image_id = tokenizer.convert_tokens_to_ids('<image>')
    assert ids[0] == tokenizer.bos_token_id and (ids == image_id).sum() == 16
    assert tokenizer.unk_token_id not in ids.tolist()  # the role markers are words too
    assert torch.equal(ids[1:17], torch.full((16, ), image_id))
    labelled = ids[labels != IGNORE_INDEX]
    assert torch.equal(labels[labels != IGNORE_INDEX], labelled)
    text = tokenizer.decode(labelled)
    assert text == ''.join(f' {t.answer}</s>' for t in turns).lstrip()
    region_id = tokenizer.convert_tokens_to_ids('<region>')
    boxes = [b for t in turns for b in t.boxes]
    assert (ids == region_id).sum() == (len(boxes) if region_token else 0)
    assert item['region_boxes'].shape == ((len(boxes), 4) if region_token else (0, 4))
    if region_token and boxes:
        assert (item['region_boxes'] - torch.tensor(boxes)).abs().max() <= 1e-6
    # the prompt of a turn is the conversation up to its answer
    prompt = encoder.prompt(turns[0])['input_ids']
    assert torch.equal(ids[:len(prompt)], prompt)
    assert tokenizer.decode(prompt[-1:]) == ':' and labels[len(prompt)] != IGNORE_INDEX
    assert (labels[:len(prompt)] == IGNORE_INDEX).all()


@pytest.mark.parametrize('side', ['left', 'right'])
def test_batches_pad_and_normalise(setup, side):
    records, instructions, tokenizer = setup
    encoder = SequenceEncoder(tokenizer, 16, region_token=True)
    dataset = ConversationDataset(records, instructions, encoder, ImageLoader((32, 32)),
                                  turns_per_sample=2)
    items = [dataset[i] for i in range(5)]
    batcher = InstructionDataPreprocessor(tokenizer.pad_token_id, MEAN, STD, side)
    batch = batcher(items)
    # MMEngine's pseudo_collate hands over a dict of lists: same batch
    from mmengine.dataset import pseudo_collate
    again = batcher(pseudo_collate(items))
    assert all(torch.equal(batch[k], again[k]) for k in batch)
    for i, item in enumerate(items):
        n = len(item['input_ids'])
        keep = batch['attention_mask'][i].bool()
        assert keep.sum() == n
        assert torch.equal(batch['input_ids'][i][keep], item['input_ids'])
        assert (batch['input_ids'][i][~keep] == tokenizer.pad_token_id).all()
        assert (batch['labels'][i][~keep] == IGNORE_INDEX).all()
        padded_end, text_end = (-1, 0) if side == 'right' else (0, -1)
        assert bool(keep[padded_end]) == (n == batch['input_ids'].shape[1]) and keep[text_end]
        r = len(item['region_boxes'])
        assert batch['region_valid'][i].sum() == r
        assert torch.equal(batch['region_boxes'][i][:r], item['region_boxes'])
    expected = (items[0]['image'].float() - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    assert (batch['pixel_values'][0] - expected).abs().max() <= 1e-5
