"""Shared fixtures: a small synthetic set in mmdet formats and a tiny CLOC checkpoint,
converted for the mmdet plugins (random weights: the tests check wiring, not accuracy)."""
import os.path as osp
import sys

import pytest
import torch
from mmengine import Config

import cllip_mm.mmdet_plugins  # noqa: F401  (registers the mmdet components)
import cllip_mm.models  # noqa: F401  (registers the cllip_mm components)
from cllip_mm.datasets.synthetic import generate_synthetic_regions
from cllip_mm.models.converters import convert_cllip_state_dict
from cllip_mm.registry import MODELS as CLLIP_MODELS

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TINY_CLOC_CFG = osp.join(REPO, 'configs/_base_/models/cloc_vit-tiny-p8.py')


def import_tool(relpath: str):
    """Import a script under tools/ as a module."""
    import importlib.util
    path = osp.join(REPO, relpath)
    name = 'tool_' + osp.splitext(osp.basename(path))[0]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory) -> str:
    """8 train / 4 val synthetic images, their tokenizer and the mmdet-format files."""
    root = str(tmp_path_factory.mktemp('synthetic'))
    generate_synthetic_regions(root, num_train=8, num_val=4, seed=0)
    import_tool('tools/dataset_converters/synthetic_to_coco.py').convert(root)
    return root + '/'


def build_tiny_cloc(tokenizer_dir: str, seed: int = 0):
    cfg = Config.fromfile(TINY_CLOC_CFG).model
    cfg.tokenizer.path = tokenizer_dir
    torch.manual_seed(seed)
    return CLLIP_MODELS.build(cfg)


@pytest.fixture(scope='session')
def tiny_cloc(synthetic_root):
    """A tiny CLOC (configs/_base_/models/cloc_vit-tiny-p8.py) in eval mode."""
    return build_tiny_cloc(osp.join(synthetic_root, 'tokenizer')).eval()


@pytest.fixture(scope='session')
def cloc_checkpoint(tiny_cloc, tmp_path_factory) -> str:
    """The tiny CLOC saved as a cllip_mm (MMEngine) checkpoint."""
    path = str(tmp_path_factory.mktemp('ckpt') / 'cloc_tiny.pth')
    torch.save({'state_dict': tiny_cloc.state_dict(), 'meta': {'iter': 0}}, path)
    return path


@pytest.fixture(scope='session')
def converted_checkpoint(tiny_cloc, tmp_path_factory) -> str:
    """The tiny CLOC converted for the mmdet plugins (all parts, grid kept)."""
    state_dict, report = convert_cllip_state_dict(tiny_cloc.state_dict())
    assert report.ok
    path = str(tmp_path_factory.mktemp('ckpt') / 'cloc_tiny_mmdet.pth')
    torch.save({'state_dict': state_dict, 'meta': {}}, path)
    return path


@pytest.fixture
def tiny_env(monkeypatch, synthetic_root, converted_checkpoint):
    """Environment read by the tiny downstream configs."""
    monkeypatch.setenv('CLOC_SYNTHETIC_ROOT', synthetic_root)
    monkeypatch.setenv('CLOC_TINY_CHECKPOINT', converted_checkpoint)


@pytest.fixture
def mmdet_scope():
    """Build with mmdet's registries first (as mmdet's tools do), restored afterwards."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


@pytest.fixture(scope='session')
def repo_root() -> str:
    return REPO


@pytest.fixture(scope='session')
def load_tool():
    """``load_tool('tools/...py')`` imports a tool script as a module."""
    return import_tool
