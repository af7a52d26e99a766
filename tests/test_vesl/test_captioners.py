"""HFCaptioner (a tiny random BLIP) and ExistingCaptions."""
import numpy as np
import pytest
from PIL import Image

from cllip_mm.registry import VESL_STAGES
from cllip_mm.testing.vesl import WORDS


def images(n=3):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40 + 7 * i, 50, 3), dtype=np.uint8))
            for i in range(n)]


@pytest.fixture(scope='module')
def blip(vesl_models):
    return VESL_STAGES.build(dict(type='HFCaptioner', model_path=vesl_models['captioner'],
                                  max_new_tokens=8))


def test_blip_captions_are_deterministic_words(blip):
    imgs = images()
    captions = blip(imgs, [{}] * 3)
    assert len(captions) == 3 and any(captions)
    for caption in captions:
        assert set(caption.split()) <= set(WORDS)
    assert blip(imgs, [{}] * 3) == captions
    assert blip(imgs[1:2], [{}]) == captions[1:2]   # batch-independent


def test_existing_captions_with_fallback(vesl_models, blip):
    stage = VESL_STAGES.build(dict(
        type='ExistingCaptions', fallback=dict(
            type='HFCaptioner', model_path=vesl_models['captioner'], max_new_tokens=8)))
    imgs = images()
    out = stage(imgs, [dict(caption='  a red\n dog '), {}, dict(caption='')])
    assert out[0] == 'a red dog'
    assert out[1:] == blip(imgs[1:], [{}, {}])
    plain = VESL_STAGES.build(dict(type='ExistingCaptions'))
    assert plain(imgs[:2], [dict(caption='x'), dict(other=1)]) == ['x', '']


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='not a directory'):
        VESL_STAGES.build(dict(type='HFCaptioner', model_path=str(tmp_path / 'none')))
