# Copyright (c) cllip_mm contributors. All rights reserved.
"""Text data shared by the datasets, the models and the tools, below both of them.

- :mod:`.class_names`: the benchmarks' class names and CLIP's prompt templates
  (``get_templates``).
- :mod:`.build_demo_tokenizer`: small tokenizers built from a corpus (the demo's), and
  the special tokens of their layouts.

It imports no other ``cllip_mm`` subpackage (``tests/test_package_layers.py``).
"""
from .build_demo_tokenizer import build_sentencepiece_tokenizer, build_word_level_tokenizer
from .class_names import (
    COCO_CLASSES,
    IMAGENET_CLASSES,
    OPENAI_IMAGENET_TEMPLATES,
    TEMPLATE_SETS,
    get_templates,
    lvis_prompt_name,
)

__all__ = [
    'COCO_CLASSES', 'IMAGENET_CLASSES', 'OPENAI_IMAGENET_TEMPLATES', 'TEMPLATE_SETS',
    'get_templates', 'lvis_prompt_name', 'build_word_level_tokenizer',
    'build_sentencepiece_tokenizer'
]
