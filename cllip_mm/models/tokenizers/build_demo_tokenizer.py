# Copyright (c) cllip_mm contributors. All rights reserved.
"""Moved to :mod:`cllip_mm.text.build_demo_tokenizer` (the demo dataset's generator
builds its tokenizer too, and datasets do not import models); re-exported here for
existing imports."""
from cllip_mm.text.build_demo_tokenizer import (  # noqa: F401
    EOS_TOKEN,
    EOT_TOKEN,
    PAD_TOKEN,
    SOT_TOKEN,
    SPECIAL_TOKENS,
    SPIECE_UNDERLINE,
    T5_SPECIAL_TOKENS,
    UNK_TOKEN,
    build_sentencepiece_tokenizer,
    build_word_level_tokenizer,
)
