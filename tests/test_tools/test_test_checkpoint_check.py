"""tools/test.py refuses a checkpoint that leaves evaluated modules uninitialised (MMEngine's
``load_from`` only warns), naming them; ``--allow-uninitialised`` evaluates anyway."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

from cllip_mm.utils.checkpoint_check import uninitialised_modules

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def without(checkpoint, prefixes, out):
    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=False)
    ckpt['state_dict'] = {k: v for k, v in ckpt['state_dict'].items()
                          if not k.startswith(prefixes)}
    torch.save(ckpt, out)
    return str(out)


def test_uninitialised_modules_names_what_is_missing(tiny_cloc_checkpoint, tmp_path):
    from mmengine.config import Config

    from cllip_mm.registry import MODELS
    from cllip_mm.utils import register_all_modules
    register_all_modules()
    cfg_path, ckpt = tiny_cloc_checkpoint
    model = MODELS.build(Config.fromfile(cfg_path).model)
    assert uninitialised_modules(model, ckpt) == {}
    clip_like = without(ckpt, ('prompter.', 'grounding_head.'), tmp_path / 'clip_like.pth')
    missing = uninitialised_modules(model, clip_like)
    assert sorted(missing) == ['grounding_head', 'prompter']
    assert all(k.startswith('prompter.') for k in missing['prompter'])


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_tools_test_refuses_then_allows(tiny_cloc_checkpoint, tmp_path):
    cfg_path, ckpt = tiny_cloc_checkpoint
    clip_like = without(ckpt, ('prompter.', ), tmp_path / 'clip_like.pth')
    cmd = [sys.executable, osp.join(REPO, 'tools/test.py'), cfg_path, clip_like,
           '--work-dir', str(tmp_path / 'work')]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert 'has no weights for prompter' in proc.stderr and '--allow-uninitialised' in proc.stderr
    proc = subprocess.run(cmd + ['--allow-uninitialised'], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
