# Copyright (c) cllip_mm contributors. All rights reserved.
"""The instruction builder: its answers, its boxes as text, determinism, the ODVG path."""
import json
import os.path as osp
from collections import Counter

import numpy as np
import pytest

from cllip_mm.mllm import (
    MAX_ROUND_TRIP_ERROR,
    InstructionBuilder,
    build_instruction_tokenizer,
    corpus_of,
    load_region_records,
    parse_boxes,
)
from cllip_mm.mllm.instructions import relation_of


@pytest.fixture(scope='module')
def records(tiny_region_set):
    return load_region_records('annotations/train.jsonl', tiny_region_set)


def test_answers_match_the_records(records):
    instructions = InstructionBuilder(dict(referring=3, grounding=3, relation=2), seed=0).build(records)
    tasks = Counter(i.task for i in instructions)
    assert tasks['referring'] > 0 and tasks['grounding'] > 0 and tasks['relation'] > 0
    for inst in instructions:
        record = records[inst.image_index]
        box = record.normalized_boxes()[inst.region_index]
        phrase = record.phrases[inst.region_index]
        if inst.task == 'referring':
            assert inst.answer == inst.target == phrase
            assert inst.question().startswith('what is in [') and inst.question().endswith(']?')
        elif inst.task == 'grounding':
            assert inst.question() == f'where is the {phrase}?'
            assert record.phrases.count(phrase) == 1  # the answer is unique
            assert inst.target == pytest.approx(tuple(box))
        else:
            assert inst.question().startswith(f'where is the {phrase} relative to the ')
            other = inst.question()[len(f'where is the {phrase} relative to the '):-1]
            assert record.phrases.count(phrase) == record.phrases.count(other) == 1
            other_box = record.normalized_boxes()[record.phrases.index(other)]
            # the answer from the geometry (y down), written out here
            dx = (box[0] + box[2] - other_box[0] - other_box[2]) / 2
            dy = (box[1] + box[3] - other_box[1] - other_box[3]) / 2
            expected = (('left' if dx < 0 else 'right') if abs(dx) >= abs(dy) else
                        ('above' if dy < 0 else 'below'))
            assert inst.answer == expected
            assert max(abs(dx), abs(dy)) >= 0.1 and min(abs(dx), abs(dy)) <= max(abs(dx), abs(dy)) / 2


def test_relation_of_hand_made_boxes():
    centre = (0.4, 0.4, 0.6, 0.6)
    assert relation_of((0.0, 0.4, 0.2, 0.6), centre, 0.1) == 'left'
    assert relation_of((0.8, 0.45, 1.0, 0.65), centre, 0.1) == 'right'
    assert relation_of((0.4, 0.0, 0.6, 0.2), centre, 0.1) == 'above'  # y grows downwards
    assert relation_of((0.35, 0.8, 0.55, 1.0), centre, 0.1) == 'below'
    assert relation_of((0.45, 0.4, 0.65, 0.6), centre, 0.1) is None  # too close
    assert relation_of((0.7, 0.7, 0.9, 0.9), centre, 0.1) is None  # diagonal: ambiguous


def test_boxes_round_trip_through_the_text(records):
    """What a question's / answer's text says is the record's box within half a bin
    (0.0005 of the image side), and ``Instruction.boxes`` is what the text reads back."""
    instructions = InstructionBuilder(dict(referring=5, grounding=5), seed=1).build(records)
    worst = 0.0
    for inst in instructions:
        truth = records[inst.image_index].normalized_boxes()[inst.region_index]
        text = inst.question() if inst.task == 'referring' else inst.answer
        (read, ) = parse_boxes(text)
        if inst.task == 'referring':
            assert tuple(read) == inst.boxes[0]
            assert parse_boxes(inst.question(region_token=True)) == [read]
        worst = max(worst, float(np.abs(np.asarray(read) - truth).max()))
    assert 0 < worst <= MAX_ROUND_TRIP_ERROR + 1e-12
    # in pixels: within half a pixel per 1000 pixels of image side
    record = records[0]
    (read, ) = parse_boxes(next(i for i in instructions if i.image_index == 0
                                and i.task == 'grounding').answer)
    side = np.array([record.width, record.height] * 2)
    gt = record.boxes[[i.region_index for i in instructions
                       if i.image_index == 0 and i.task == 'grounding'][0]]
    assert np.abs(np.asarray(read) * side - gt).max() <= side.max() / 2000 + 1e-6


def test_region_token_follows_each_box(records):
    inst = InstructionBuilder(dict(referring=1), seed=0).build(records)[0]
    assert inst.question(region_token=True) == inst.question()[:-1] + ' <region>?'


def test_deterministic_given_the_seed(records):
    per_image = dict(referring=2, grounding=2, relation=2)
    a = InstructionBuilder(per_image, seed=5).build(records)
    b = InstructionBuilder(per_image, seed=5).build(records)
    c = InstructionBuilder(per_image, seed=6).build(records)
    assert a == b
    assert a != c
    # adding images (or tasks) leaves the questions of the others as they were
    head = InstructionBuilder(per_image, seed=5).build(records[:5])
    assert head == [i for i in a if i.image_index < 5]
    referring_only = InstructionBuilder(dict(referring=2), seed=5).build(records)
    assert referring_only == [i for i in a if i.task == 'referring']


def test_odvg_files_take_the_same_path(records, tiny_region_set, tmp_path):
    """An ODVG grounding file of the same annotations gives the same instructions."""
    odvg = tmp_path / 'train.odvg.jsonl'
    with open(odvg, 'w') as f:
        for r in records:
            f.write(json.dumps(dict(
                filename=osp.relpath(r.img_path, tiny_region_set), width=r.width, height=r.height,
                grounding=dict(caption=' and '.join(r.phrases), regions=[
                    dict(bbox=[float(v) for v in b], phrase=p) for b, p in zip(r.boxes, r.phrases)])))
                + '\n')
    from_odvg = load_region_records(str(odvg), tiny_region_set)
    assert [r.img_path for r in from_odvg] == [r.img_path for r in records]
    builder = InstructionBuilder(dict(referring=2, grounding=2, relation=1), seed=0)
    assert builder.build(from_odvg) == builder.build(records)


def test_bad_arguments():
    with pytest.raises(ValueError, match='unknown tasks'):
        InstructionBuilder(dict(counting=1))
    with pytest.raises(ValueError, match='referring template'):
        InstructionBuilder(templates=dict(referring='what is this?'))
    with pytest.raises(ValueError, match='grounding template'):
        InstructionBuilder(templates=dict(grounding='where is <box>?'))


def test_tokenizer_gives_the_text_back(records):
    instructions = InstructionBuilder(seed=0).build(records)
    tok = build_instruction_tokenizer(corpus_of(instructions))
    for inst in instructions:
        for text in (inst.answer, inst.question()):
            ids = tok(text, add_special_tokens=False).input_ids
            assert tok.unk_token_id not in ids
            assert tok.decode(ids) == text
    ids = tok(instructions[0].question(region_token=True), add_special_tokens=False).input_ids
    assert ids.count(tok.convert_tokens_to_ids('<region>')) == 1
    # deterministic: the same corpus gives the same vocabulary
    assert build_instruction_tokenizer(corpus_of(instructions)).get_vocab() == tok.get_vocab()
