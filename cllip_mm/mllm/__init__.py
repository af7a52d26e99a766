# Copyright (c) cllip_mm contributors. All rights reserved.
"""A small region-aware multimodal LLM on the transformers stack (issue #25).

LLaVA (``transformers.LlavaForConditionalGeneration``) whose vision tower is a cllip_mm
encoder (CLOC or the CLIP baseline) and, optionally, whose question boxes also enter as a
region token made by CLOC's Prompter (the paper's Ferret* variant). One concept per module:

- :mod:`~cllip_mm.mllm.coords`: boxes as text coordinates (0-999 frame) and back;
- :mod:`~cllip_mm.mllm.records`: region-text / ODVG records through the project's reader;
- :mod:`~cllip_mm.mllm.instructions`: referring, grounding and relation questions;
- :mod:`~cllip_mm.mllm.answers`: parsing and scoring generations (malformed ones counted);
- :mod:`~cllip_mm.mllm.tokenizer`: a word-level tokenizer built from the corpus;
- :mod:`~cllip_mm.mllm.vision`: a cllip_mm checkpoint as a ``CLIPVisionModel`` + Prompter;
- :mod:`~cllip_mm.mllm.modeling`: ``RegionLlavaForConditionalGeneration``;
- :mod:`~cllip_mm.mllm.builder`: assembling it (small LM from a config);
- :mod:`~cllip_mm.mllm.data`: token sequences, images, batches;
- :mod:`~cllip_mm.mllm.engine`: training with MMEngine's runner (why: its docstring);
- :mod:`~cllip_mm.mllm.inference`: generation, evaluation, ``RegionMLLM.ask``.
"""
from .answers import ParsedAnswer, Scores, normalize_text, parse_answer, score_generations
from .builder import DEFAULT_LM, build_region_llava
from .coords import (
    MAX_ROUND_TRIP_ERROR,
    NUM_BINS,
    box_iou,
    find_boxes,
    format_box,
    normalize_box,
    parse_boxes,
    text_box,
)
from .data import (
    ConversationDataset,
    ImageLoader,
    InstructionDataPreprocessor,
    PromptDataset,
    SequenceEncoder,
)
from .engine import RegionLlavaTrainer, train_region_llava
from .inference import Answer, RegionMLLM, evaluate_instructions, generate_answers
from .instructions import (
    DEFAULT_TEMPLATES,
    REGION_TOKEN,
    RELATIONS,
    TASKS,
    Instruction,
    InstructionBuilder,
)
from .modeling import RegionLlavaConfig, RegionLlavaForConditionalGeneration
from .records import RegionRecord, load_region_records, records_from_dataset
from .tokenizer import IMAGE_TOKEN, build_instruction_tokenizer, corpus_of
from .vision import VisionSource, load_vision_source, vit_output_from_hf

__all__ = [
    'ParsedAnswer', 'Scores', 'normalize_text', 'parse_answer', 'score_generations',
    'DEFAULT_LM', 'build_region_llava', 'MAX_ROUND_TRIP_ERROR', 'NUM_BINS', 'box_iou',
    'find_boxes', 'format_box', 'normalize_box', 'parse_boxes', 'text_box',
    'ConversationDataset', 'ImageLoader', 'InstructionDataPreprocessor', 'PromptDataset',
    'SequenceEncoder', 'RegionLlavaTrainer', 'train_region_llava', 'Answer', 'RegionMLLM',
    'evaluate_instructions', 'generate_answers', 'DEFAULT_TEMPLATES', 'REGION_TOKEN',
    'RELATIONS', 'TASKS', 'Instruction', 'InstructionBuilder', 'RegionLlavaConfig',
    'RegionLlavaForConditionalGeneration', 'RegionRecord', 'load_region_records',
    'records_from_dataset', 'IMAGE_TOKEN', 'build_instruction_tokenizer', 'corpus_of',
    'VisionSource', 'load_vision_source', 'vit_output_from_hf'
]
