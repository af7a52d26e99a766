# Copyright (c) cllip_mm contributors. All rights reserved.
"""Every torch.load of a user file refuses pickles that would run code."""
import ast
import glob
import importlib.util
import os.path as osp
import pathlib
import pickle

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader

import cllip_mm  # noqa: F401
from cllip_mm.models.converters.io import load_cllip_state_dict, load_state_dict_file

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class Payload:
    """Unpickling it would create ``marker`` (a stand-in for running any code)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker), )


def _load_cllip_to_hf(path):
    spec = importlib.util.spec_from_file_location(
        'cllip_to_hf_tool', osp.join(REPO, 'tools/model_converters/cllip_to_hf.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.load_weights(torch.nn.Linear(1, 1), path)


LOADERS = {
    'converters.io.load_state_dict_file': load_state_dict_file,
    'converters.io.load_cllip_state_dict': load_cllip_state_dict,
    'tools/model_converters/cllip_to_hf.py': _load_cllip_to_hf,
    # Runner(load_from=...), resume and init_cfg=dict(type='Pretrained')
    'mmengine CheckpointLoader': lambda p: CheckpointLoader.load_checkpoint(p, 'cpu'),
}


@pytest.mark.parametrize('loader', sorted(LOADERS))
def test_malicious_checkpoint_is_refused(tmp_path, loader):
    marker = tmp_path / 'code_ran'
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'x': Payload(str(marker))}, path)
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        LOADERS[loader](path)
    assert not marker.exists()


def test_every_torch_load_in_the_package_and_tools_is_weights_only():
    """A new ``torch.load`` without ``weights_only=True`` fails here."""
    offenders = []
    files = glob.glob(osp.join(REPO, 'cllip_mm', '**', '*.py'), recursive=True) + \
        glob.glob(osp.join(REPO, 'tools', '**', '*.py'), recursive=True)
    assert len(files) > 20
    for path in files:
        for node in ast.walk(ast.parse(open(path).read(), path)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == 'load' and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == 'torch'):
                continue
            ok = any(k.arg == 'weights_only' and isinstance(k.value, ast.Constant)
                     and k.value.value is True for k in node.keywords)
            if not ok:
                offenders.append(f'{osp.relpath(path, REPO)}:{node.lineno}')
    assert not offenders, offenders
