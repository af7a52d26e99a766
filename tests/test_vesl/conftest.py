"""Tiny random VESL models (BLIP, OWLv2, an NLTK tagger), built once per session."""
import pytest


@pytest.fixture(scope='session')
def vesl_models(tmp_path_factory):
    from cllip_mm.testing import make_tiny_vesl_models
    return make_tiny_vesl_models(str(tmp_path_factory.mktemp('vesl_models')))


@pytest.fixture(scope='session')
def vesl_images(tmp_path_factory):
    """10 JPEGs of varied sizes, one of them truncated (undecodable)."""
    from cllip_mm.testing import make_vesl_images
    root = str(tmp_path_factory.mktemp('vesl_images'))
    paths = make_vesl_images(root, 10, seed=1)
    with open(paths[3], 'rb') as f:
        data = f.read()
    with open(paths[3], 'wb') as f:
        f.write(data[:len(data) // 3][:200])
    return root
