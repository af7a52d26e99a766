# Copyright (c) cllip_mm contributors. All rights reserved.
import pytest
from tiny_clip import make_clip_tokenizer


@pytest.fixture(scope='session')
def clip_tokenizer_dir(tmp_path_factory):
    """A tiny CLIPTokenizer save_pretrained directory (see tiny_clip.make_clip_tokenizer)."""
    return make_clip_tokenizer(tmp_path_factory.mktemp('clip_tokenizer'))
