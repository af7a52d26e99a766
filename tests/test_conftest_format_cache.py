"""The suite's memo of MMEngine's config formatting (tests/conftest.py) returns yapf's own
answer and formats each text once."""
import os.path as osp
import uuid

import mmengine.config.config as mmengine_config
from mmengine import Config
from yapf.yapflib.yapf_api import FormatCode

DEMO_CONFIG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                       'configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py')


def test_pretty_text_is_yapfs_text_formatted_once():
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.unseen_key = uuid.uuid4().hex  # a text no earlier test formatted
    before = mmengine_config.FormatCode.cache_info()
    first = cfg.pretty_text
    after_first = mmengine_config.FormatCode.cache_info()
    second = cfg.pretty_text
    after_second = mmengine_config.FormatCode.cache_info()

    assert after_first.misses == before.misses + 1   # formatted ...
    assert after_second.hits == after_first.hits + 1  # ... once
    assert after_second.misses == after_first.misses
    assert first == second
    # the same text as MMEngine without the memo: yapf on the unformatted source
    original = mmengine_config.FormatCode
    try:
        mmengine_config.FormatCode = FormatCode
        assert cfg.pretty_text == first
    finally:
        mmengine_config.FormatCode = original
