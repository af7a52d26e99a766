# Copyright (c) cllip_mm contributors. All rights reserved.
"""A tiny MLLM (CLOC tower + Prompter region token) trained for a few dozen steps with
MMEngine's runner: the loss falls, frozen parts stay frozen, and a save / load round trip
gives the same generations."""
import copy

import pytest
import torch
from mllm_test_config import TINY_LM

from cllip_mm.mllm import (
    ConversationDataset,
    ImageLoader,
    InstructionBuilder,
    InstructionDataPreprocessor,
    RegionMLLM,
    SequenceEncoder,
    build_instruction_tokenizer,
    build_region_llava,
    corpus_of,
    generate_answers,
    load_region_records,
    load_vision_source,
    train_region_llava,
)

ITERS = 80


def fixed_batch_loss(model, dataset):
    batch = InstructionDataPreprocessor.from_config(model.config)([dataset[i] for i in range(16)])
    with torch.no_grad():
        return model.loss_on(batch['input_ids'], batch['attention_mask'], batch['labels'],
                             batch['pixel_values'], batch['region_boxes'],
                             batch['region_valid']).item()


@pytest.fixture(scope='module')
def trained(tiny_region_set, tiny_cloc_checkpoint, tmp_path_factory):
    train = load_region_records('annotations/train.jsonl', tiny_region_set)
    val = load_region_records('annotations/val.jsonl', tiny_region_set)
    train_inst = InstructionBuilder(seed=0).build(train)
    val_inst = InstructionBuilder(dict(referring=1, grounding=1, relation=1), seed=1).build(val)
    tokenizer = build_instruction_tokenizer(corpus_of(train_inst))
    source = load_vision_source(*tiny_cloc_checkpoint)
    model = build_region_llava(source, tokenizer, lm=TINY_LM, region_token=True, seed=0)
    initial = copy.deepcopy(model.state_dict())
    encoder = SequenceEncoder(tokenizer, model.num_image_tokens, region_token=True)
    dataset = ConversationDataset(train, train_inst, encoder, ImageLoader(source.image_processing['size']))
    loss_before = fixed_batch_loss(model.eval(), dataset)
    work_dir = str(tmp_path_factory.mktemp('region_mllm'))
    model = train_region_llava(model, dataset, work_dir, ITERS, batch_size=8, lr=5e-3,
                               warmup_iters=5, log_interval=20)
    return dict(model=model, tokenizer=tokenizer, val=val, val_inst=val_inst, initial=initial,
                dataset=dataset, loss_before=loss_before,
                loss_after=fixed_batch_loss(model, dataset), work_dir=work_dir)


def test_training_reduces_the_loss(trained):
    assert trained['loss_after'] < 0.7 * trained['loss_before'], trained


def test_frozen_tower_and_prompter_stay_as_loaded(trained):
    state, initial = trained['model'].state_dict(), trained['initial']
    frozen = [k for k in state if k.startswith(('model.vision_tower.', 'region_sampler.'))]
    trainable = [k for k in state if k.startswith(('region_projector.', 'model.language_model.',
                                                   'model.multi_modal_projector.'))]
    assert frozen and trainable
    assert all(torch.equal(state[k], initial[k]) for k in frozen)
    assert sum(not torch.equal(state[k], initial[k]) for k in trainable) > 0.9 * len(trainable)


def test_save_load_round_trip_gives_the_same_generations(trained, tmp_path):
    model, tokenizer = trained['model'], trained['tokenizer']
    val, val_inst = trained['val'], trained['val_inst']
    before = generate_answers(model, tokenizer, val, val_inst, batch_size=16)
    # not a vacuous comparison: the answers depend on the question
    assert len(set(before)) >= 3, before
    RegionMLLM(model, tokenizer).save_pretrained(str(tmp_path))
    loaded = RegionMLLM.from_pretrained(str(tmp_path))
    assert loaded.model.region_sampler is not None
    after = generate_answers(loaded.model, loaded.tokenizer, val, val_inst, batch_size=16)
    assert after == before
    reference = model.state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in loaded.model.state_dict().items())
    assert loaded.tokenizer.get_vocab() == tokenizer.get_vocab()
    # one question at a time (no padding) gives the batch's answers (left padding)
    assert [generate_answers(model, tokenizer, val, [i], batch_size=1)[0]
            for i in val_inst[:8]] == before[:8]


def test_ask_answers_as_the_batch_does(trained):
    model, tokenizer, val = trained['model'], trained['tokenizer'], trained['val']
    inst = next(i for i in trained['val_inst'] if i.task == 'referring')
    record = val[inst.image_index]
    box_px = (record.boxes[inst.region_index]).tolist()
    answer = RegionMLLM(model, tokenizer).ask(record.img_path, 'what is in <box>?', boxes=[box_px])
    assert answer.question == inst.question(region_token=True)
    assert answer.text == generate_answers(model, tokenizer, val, [inst])[0]
    with pytest.raises(ValueError, match='marks'):
        RegionMLLM(model, tokenizer).ask(record.img_path, 'what is in <box>?')


def test_stock_llava_loads_the_tower_variant(tiny_clip_checkpoint, trained, tmp_path):
    """Without a region sampler the saved model is plain LLaVA to transformers."""
    from transformers import LlavaForConditionalGeneration
    tokenizer = trained['tokenizer']
    model = build_region_llava(load_vision_source(*tiny_clip_checkpoint), tokenizer,
                               lm=TINY_LM, seed=1).eval()
    model.save_pretrained(str(tmp_path))
    stock = LlavaForConditionalGeneration.from_pretrained(str(tmp_path)).eval()
    ids = torch.tensor([[1] + [model.config.image_token_index] * 16 + [20, 21, 22]])
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ours = model(inputs_embeds=model.embed_inputs(ids, pixels)).logits
        theirs = stock(input_ids=ids, pixel_values=pixels).logits
    assert (ours - theirs).abs().max() <= 1e-5


def test_tuning_the_tower_is_an_option(tiny_cloc_checkpoint, trained, tmp_path):
    tokenizer = trained['tokenizer']
    model = build_region_llava(load_vision_source(*tiny_cloc_checkpoint), tokenizer, lm=TINY_LM,
                               region_token=True, train_vision_tower=True,
                               train_region_sampler=True, seed=0)
    before = copy.deepcopy(model.state_dict())
    dataset = trained['dataset']
    dataset = ConversationDataset(dataset.records, [t for s in dataset.samples for t in s],
                                  SequenceEncoder(tokenizer, model.num_image_tokens, True),
                                  dataset.image_loader)
    train_region_llava(model, dataset, str(tmp_path), 2, batch_size=4, lr=1e-3, warmup_iters=1)
    after = model.state_dict()
    for prefix in ('model.vision_tower.', 'region_sampler.'):
        keys = [k for k in after if k.startswith(prefix) and after[k].is_floating_point()]
        assert any(not torch.equal(after[k], before[k]) for k in keys), prefix


def test_demo_script_draws_the_answer(trained, tmp_path):
    """demo/region_mllm_demo.py on a saved model: the printed answer is ``ask``'s, and
    the picture is the upscaled image with the answer's boxes drawn in red."""
    import cv2
    model, tokenizer, val = trained['model'], trained['tokenizer'], trained['val']
    RegionMLLM(model, tokenizer).save_pretrained(str(tmp_path / 'hf'))
    inst = next(i for i in trained['val_inst'] if i.task == 'grounding')
    record = val[inst.image_index]
    question = inst.question(region_token=False)
    expected = RegionMLLM(model, tokenizer).ask(record.img_path, question)
    import importlib.util
    import os.path as osp
    path = osp.join(osp.dirname(__file__), '..', '..', 'demo', 'region_mllm_demo.py')
    spec = importlib.util.spec_from_file_location('region_mllm_demo', path)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    out = str(tmp_path / 'answer.png')
    assert demo.main([str(tmp_path / 'hf'), record.img_path, question, '--out', out,
                      '--scale', '2']) == 0
    picture, image = cv2.imread(out), cv2.imread(record.img_path)
    assert picture.shape == (2 * image.shape[0] + 56, 2 * image.shape[1], 3)
    red = (picture[..., 2] == 255) & (picture[..., 1] == 0) & (picture[..., 0] == 0)
    assert red.any() == bool(expected.boxes)
    with pytest.raises(SystemExit):
        demo.parse_args([str(tmp_path), record.img_path, 'q', '--boxes', '1', '2', '3'])
