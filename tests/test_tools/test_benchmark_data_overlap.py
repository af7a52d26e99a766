# Copyright (c) cllip_mm contributors. All rights reserved.
"""tools/benchmark.py warns (a logged warning, and ``data_overlap`` in its JSON) when the
training data the checkpoint shows (MMEngine's meta['cfg']) overlaps the evaluated set: a
checkpoint whose training config trains on the evaluated file."""
import importlib.util
import json
import os.path as osp

import torch
from mmengine.config import Config

import cllip_mm.utils.data_overlap as data_overlap

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool():
    spec = importlib.util.spec_from_file_location('benchmark_tool_data_overlap',
                                                  osp.join(REPO, 'tools', 'benchmark.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_on_the_evaluated_file_warns(tiny_cloc_checkpoint, tiny_region_set, tmp_path,
                                              monkeypatch):
    logs = []
    monkeypatch.setattr(data_overlap, 'print_log', lambda msg, **kw: logs.append(msg))
    cfg_path, ckpt = tiny_cloc_checkpoint
    state_dict = torch.load(ckpt, map_location='cpu', weights_only=False)['state_dict']

    def checkpoint(name, train_ann_file):
        cfg = Config.fromfile(cfg_path)
        cfg.train_dataloader.dataset.ann_file = train_ann_file
        path = str(tmp_path / f'{name}.pth')
        torch.save(dict(state_dict=state_dict, meta=dict(cfg=cfg.pretty_text)), path)
        return path

    tool = load_tool()
    task = 'synthetic_region_retrieval'  # evaluates <root>/annotations/val.jsonl
    options = ['--tasks', task, '--task-root', f'{task}={tiny_region_set}', '--input-size', '32',
               '--num-workers', '0', '--batch-size', '8']

    leaked = checkpoint('leaked', 'annotations/val.jsonl')
    out = tmp_path / 'leaked.json'
    tool.main([cfg_path, leaked, *options, '--work-dir', str(tmp_path / 'w1'), '--out', str(out)])
    val = osp.join(tiny_region_set, 'annotations', 'val.jsonl')
    warned = [m for m in logs if 'possible training / evaluation overlap' in m]
    assert len(warned) == 1, logs
    assert task in warned[0] and leaked in warned[0] and val in warned[0]
    assert 'evaluated annotation file' in warned[0]
    with open(out) as f:
        saved = json.load(f)
    assert len(saved['data_overlap'][task]) == 1 and val in saved['data_overlap'][task][0]

    logs.clear()
    held_out = checkpoint('held_out', 'annotations/train.jsonl')
    out = tmp_path / 'held_out.json'
    tool.main([cfg_path, held_out, *options, '--work-dir', str(tmp_path / 'w2'),
               '--out', str(out)])
    assert not [m for m in logs if 'overlap' in m], logs
    with open(out) as f:
        assert json.load(f)['data_overlap'] == {task: []}
