# Copyright (c) cllip_mm contributors. All rights reserved.
"""tools/test.py and tools/benchmark.py refuse a checkpoint whose meta says its weights
need another activation than the config builds (QuickGELU weights under a GELU config),
naming the checkpoint, the key and both values; a matching checkpoint is evaluated."""
import importlib.util
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from cllip_mm.utils.weights_meta import META_KEY, WeightsMetaMismatch, model_weights_meta

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool():
    spec = importlib.util.spec_from_file_location('benchmark_tool_weights_meta',
                                                  osp.join(REPO, 'tools', 'benchmark.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checkpoint_with_meta(cfg_path, act, out):
    """The tiny CLOC of ``cfg_path`` built with ``act`` in both towers, saved with the
    meta the project writes."""
    from cllip_mm.registry import MODELS
    from cllip_mm.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(cfg_path)
    cfg.model.image_encoder.act = cfg.model.text_encoder.act = act
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    torch.save(dict(state_dict=model.state_dict(), meta={META_KEY: model_weights_meta(model)}),
               out)
    return str(out)


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_quick_gelu_checkpoint_under_a_gelu_config(tiny_cloc_checkpoint, tiny_region_set,
                                                    tmp_path):
    cfg_path, _ = tiny_cloc_checkpoint  # GELU (the configs' default)
    quick = checkpoint_with_meta(cfg_path, 'quick_gelu', tmp_path / 'quick.pth')
    gelu = checkpoint_with_meta(cfg_path, 'gelu', tmp_path / 'gelu.pth')
    tool = load_tool()
    task = 'synthetic_region_retrieval'
    options = ['--tasks', task, '--task-root', f'{task}={tiny_region_set}', '--input-size', '32',
               '--num-workers', '0', '--batch-size', '8']
    with pytest.raises(WeightsMetaMismatch) as error:
        tool.main([cfg_path, quick, *options, '--work-dir', str(tmp_path / 'quick')])
    message = str(error.value)
    assert quick in message and cfg_path in message
    assert f"[{META_KEY!r}]['vision_act'] is 'quick_gelu'" in message and "has 'gelu'" in message
    # --allow-uninitialised is about missing weights, not about a wrong activation
    with pytest.raises(WeightsMetaMismatch):
        tool.main([cfg_path, quick, *options, '--work-dir', str(tmp_path / 'quick2'),
                   '--allow-uninitialised'])
    assert not osp.exists(tmp_path / 'quick' / 'benchmark.json')
    results = tool.main([cfg_path, gelu, *options, '--work-dir', str(tmp_path / 'gelu')])
    assert results[task]['region_retrieval/num_regions'] > 0

    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools/test.py'), cfg_path, quick,
                           '--work-dir', str(tmp_path / 'test_py')],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode != 0
    assert 'WeightsMetaMismatch' in proc.stderr and quick in proc.stderr
    assert "['vision_act'] is 'quick_gelu'" in proc.stderr, proc.stderr[-3000:]
