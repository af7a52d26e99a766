# Copyright (c) cllip_mm contributors. All rights reserved.
"""tools/misc/check_dataset.py finds every bad record and image of a file in one pass."""
import importlib.util
import json
import os.path as osp
import sys

import pytest
from mmengine.config import Config
from PIL import Image

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'check_dataset_tool', osp.join(REPO, 'tools/misc/check_dataset.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the worker processes unpickle check_image from it
    spec.loader.exec_module(module)
    return module


def record(image, w=40, h=30, bbox=(1, 2, 11, 12)):
    return json.dumps(dict(image=image, width=w, height=h, caption='c',
                           regions=[dict(bbox=list(bbox), phrase='thing')]))


@pytest.fixture
def config(tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    for name in ('a.png', 'b.png', 'c.png'):
        Image.new('RGB', (40, 30), (1, 2, 3)).save(images / name)
    (images / 'corrupt.jpg').write_bytes(b'not a jpeg')
    (images / 'empty.jpg').write_bytes(b'')
    rotated = Image.new('RGB', (40, 30))
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(images / 'rotated.jpg', exif=exif.tobytes())
    lines = [
        record('images/a.png'),
        record('images/corrupt.jpg'),           # 2: unreadable
        '{"image": "images/b.png", ',           # 3: invalid JSON
        record('images/b.png', w=64),           # 4: size mismatch
        record('images/c.png', bbox=(5, 5, 99, 9)),  # 5: region outside the image
        record('images/empty.jpg'),             # 6: unreadable
        record('images/rotated.jpg', w=30, h=40),  # 7: fine, EXIF orientation 6
        record('images/missing.png'),           # 8: missing file
    ]
    (tmp_path / 'ann.jsonl').write_bytes(b'\xef\xbb\xbf' + '\r\n'.join(lines).encode())
    cfg = Config(dict(default_scope='cllip_mm', val_dataloader=dict(dataset=dict(
        type='RegionTextDataset', data_root=str(tmp_path), ann_file='ann.jsonl',
        test_mode=True, pipeline=[dict(type='LoadImageFromFileChecked')]))))
    path = str(tmp_path / 'cfg.py')
    cfg.dump(path)
    return path, tmp_path


def test_report_lists_every_bad_record(config, monkeypatch, capsys):
    path, root = config
    out = str(root / 'report.json')
    monkeypatch.setattr(sys, 'argv', ['check_dataset.py', path, '--split', 'val',
                                      '--nproc', '1', '--out', out])
    with pytest.raises(SystemExit) as exit_info:
        load_tool().main()
    assert exit_info.value.code == 1
    report = json.load(open(out))
    assert [(b['line'], b['reason']) for b in report['bad']] == [
        (2, 'unreadable image'), (3, 'invalid JSON'), (4, 'size mismatch'),
        (5, 'box outside image'), (6, 'unreadable image'), (8, 'missing image file')]
    assert report['num_records'] == 8  # non-blank lines, the invalid JSON one included
    assert report['num_bad_records'] == 5 and report['num_bad_regions'] == 1
    assert report['counts']['record: unreadable image'] == 2
    assert report['exif_orientations'] == {'6': 1}
    assert 'ann.jsonl:4: field `width`/`height`' in capsys.readouterr().out


def test_clean_dataset_exits_0(config, monkeypatch):
    path, root = config
    (root / 'ann.jsonl').write_text(record('images/a.png') + '\n' + record('images/b.png'))
    monkeypatch.setattr(sys, 'argv', ['check_dataset.py', path, '--split', 'val',
                                      '--nproc', '2'])  # the parallel path
    with pytest.raises(SystemExit) as exit_info:
        load_tool().main()
    assert exit_info.value.code == 0
    assert json.load(open(root / 'ann.jsonl.check.json'))['bad'] == []
