"""tools/benchmark.py refuses a checkpoint that leaves evaluated modules uninitialised
(MMEngine's ``load_from`` only warns), naming them, as tools/test.py does;
``--allow-uninitialised`` evaluates anyway."""
import importlib.util
import os.path as osp

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool():
    spec = importlib.util.spec_from_file_location('benchmark_tool_ckpt_check',
                                                  osp.join(REPO, 'tools', 'benchmark.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def without(checkpoint, prefixes, out):
    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=False)
    ckpt['state_dict'] = {k: v for k, v in ckpt['state_dict'].items()
                          if not k.startswith(prefixes)}
    torch.save(ckpt, out)
    return str(out)


def test_benchmark_refuses_then_allows(tiny_cloc_checkpoint, tiny_region_set, tmp_path):
    tool = load_tool()
    cfg_path, ckpt = tiny_cloc_checkpoint
    clip_like = without(ckpt, ('prompter.', 'grounding_head.'), tmp_path / 'clip_like.pth')
    task = 'synthetic_region_retrieval'
    options = ['--tasks', task, '--task-root', f'{task}={tiny_region_set}',
               '--input-size', '32', '--num-workers', '0', '--batch-size', '8']
    argv = [cfg_path, clip_like] + options
    with pytest.raises(RuntimeError) as error:
        tool.main(argv + ['--work-dir', str(tmp_path / 'refused')])
    message = str(error.value)
    assert clip_like in message and '--allow-uninitialised' in message
    assert 'prompter (' in message and 'grounding_head (' in message
    assert not osp.exists(tmp_path / 'refused' / 'benchmark.json')

    allowed = tool.main(argv + ['--work-dir', str(tmp_path / 'allowed'),
                                '--allow-uninitialised'])
    assert allowed[task]['region_retrieval/num_regions'] > 0
    assert osp.exists(tmp_path / 'allowed' / 'benchmark.json')
    # the checkpoint that covers the model passes without the flag
    full = tool.main([cfg_path, ckpt] + options + ['--work-dir', str(tmp_path / 'full')])
    assert full[task]['region_retrieval/num_regions'] == allowed[task]['region_retrieval/num_regions']
