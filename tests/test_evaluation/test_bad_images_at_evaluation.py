# Copyright (c) cllip_mm contributors. All rights reserved.
"""Runner.test (what tools/test.py and validation during training run) on a val file with
an undecodable image and a record of the wrong size: with on_bad_record='skip' both are
left out and counted, and the metrics equal those of the file without them. (Without
'skip' the error names the file and the line:
tests/test_datasets/test_region_text_dataset.py::test_unreadable_image_left_out_at_test_time.)"""
import json
import os.path as osp

import pytest
from mmengine.runner import Runner

from cllip_mm.datasets.synthetic import all_phrases

BAD_LINES = (3, 7)  # 1-based


@pytest.fixture
def val_files(tiny_region_set):
    """(file with two bad records, the same file without them), relative to the root."""
    root = tiny_region_set
    with open(osp.join(root, 'annotations', 'val.jsonl')) as f:
        records = [json.loads(line) for line in f if line.strip()]
    with open(osp.join(root, 'images', 'corrupt.jpg'), 'wb') as f:
        f.write(b'\xff\xd8\xff\xe0 truncated')
    bad = [dict(r) for r in records]
    bad[BAD_LINES[0] - 1]['image'] = 'images/corrupt.jpg'
    bad[BAD_LINES[1] - 1]['width'] += 7  # as if the image had been cropped
    clean = [r for i, r in enumerate(records, 1) if i not in BAD_LINES]
    for name, recs in (('val_bad.jsonl', bad), ('val_clean.jsonl', clean)):
        with open(osp.join(root, 'annotations', name), 'w') as f:
            f.write(''.join(json.dumps(r) + '\n' for r in recs))
    return 'annotations/val_bad.jsonl', 'annotations/val_clean.jsonl'


def run_test(make_tiny_cloc_cfg, ann_file, name, **dataset_kwargs):
    cfg = make_tiny_cloc_cfg()
    cfg.work_dir = cfg.work_dir + '_' + name
    cfg.experiment_name = f'bad_images_{name}'
    cfg.test_dataloader.dataset.update(ann_file=ann_file,
                                       metainfo=dict(classes=all_phrases()),
                                       **dataset_kwargs)
    return Runner.from_cfg(cfg).test()


@pytest.mark.slow  # over ~30 s on 2 idle cores: out of the fast subset
def test_bad_images_are_left_out_and_counted(make_tiny_cloc_cfg, val_files):
    bad_file, clean_file = val_files
    got = run_test(make_tiny_cloc_cfg, bad_file, 'bad', on_bad_record='skip')
    clean = run_test(make_tiny_cloc_cfg, clean_file, 'clean')
    for prefix in ('region_cls', 'retrieval', 'grounding'):
        assert got.pop(f'{prefix}/num_images_left_out') == 2
        assert clean.pop(f'{prefix}/num_images_left_out') == 0
    assert got.keys() == clean.keys()
    for key, value in clean.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key

