"""demo/image_demo.py writes a PNG whose boxes and labels are the predictions."""
import importlib.util
import json
import os.path as osp

import mmcv
import numpy as np
import pytest
from mmengine.config import Config

from cllip_mm.registry import DATASETS
from cllip_mm.visualization import DEFAULT_PALETTE, RegionTextVisualizer

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_script(path):
    spec = importlib.util.spec_from_file_location(osp.basename(path)[:-3], osp.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def record_draws(monkeypatch):
    """The boxes and texts every RegionTextVisualizer draws, in drawing order."""
    calls = dict(bboxes=[], texts=[])
    draw_bboxes, draw_texts = RegionTextVisualizer.draw_bboxes, RegionTextVisualizer.draw_texts

    def bboxes(self, b, *args, **kwargs):
        calls['bboxes'].append((np.array(b), kwargs.get('edge_colors')))
        return draw_bboxes(self, b, *args, **kwargs)

    def texts(self, t, *args, **kwargs):
        calls['texts'].extend([t] if isinstance(t, str) else t)
        return draw_texts(self, t, *args, **kwargs)

    monkeypatch.setattr(RegionTextVisualizer, 'draw_bboxes', bboxes)
    monkeypatch.setattr(RegionTextVisualizer, 'draw_texts', texts)
    return calls


def box_edge_has(image, box, colour, tol=40):
    """Whether the left edge of ``box`` (xyxy pixels of ``image``) is drawn in ``colour``."""
    x, y = int(round(box[0])), int(round((box[1] + box[3]) / 2))
    patch = image[y - 1:y + 2, max(x - 1, 0):x + 2].astype(int)
    return bool((np.abs(patch - colour).max(-1) <= tol).any())


@pytest.fixture(scope='module')
def val_info(tiny_cloc_checkpoint):
    cfg = Config.fromfile(tiny_cloc_checkpoint[0])
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    # the first image with two regions or more (the ground / heat-map demos use two phrases)
    index = next(i for i in range(len(dataset)) if len(dataset.get_data_info(i)['gt_phrases']) >= 2)
    return dataset.get_data_info(index), list(dataset.metainfo['classes'])


def test_classify_demo_draws_the_predicted_labels(tiny_cloc_checkpoint, val_info, tmp_path,
                                                  record_draws):
    cfg_path, ckpt = tiny_cloc_checkpoint
    info, classes = val_info
    boxes = info['gt_bboxes']
    out, pred_out = str(tmp_path / 'labels.png'), str(tmp_path / 'labels.json')
    demo = load_script('demo/image_demo.py')
    demo.main([info['img_path'], cfg_path, '--weights', ckpt, '--device', 'cpu',
               '--boxes', *map(str, boxes.ravel().tolist()), '--texts', *classes[:6],
               '--min-size', '200', '--out', out, '--pred-out', pred_out])
    with open(pred_out) as f:
        pred = json.load(f)
    assert record_draws['texts'] == [f'{n} {s:.2f}' for n, s in zip(pred['label_names'], pred['scores'])]
    assert set(pred['label_names']) <= set(classes[:6]) and len(pred['label_names']) == len(boxes)

    drawn = mmcv.imread(out, channel_order='rgb')
    assert min(drawn.shape[:2]) == 200  # --min-size enlarges the small image
    factor = np.array([drawn.shape[1] / info['width'], drawn.shape[0] / info['height']] * 2)
    (drawn_boxes, colours), = record_draws['bboxes']
    np.testing.assert_allclose(drawn_boxes, np.array(pred['bboxes']) * factor, atol=0.5)
    distinct = list(dict.fromkeys(pred['label_names']))
    for box, name, colour in zip(drawn_boxes, pred['label_names'], colours):
        expected = DEFAULT_PALETTE[distinct.index(name) % len(DEFAULT_PALETTE)]
        assert tuple(colour) == expected
        assert box_edge_has(drawn, box, np.array(expected))


def test_ground_and_heatmap_demos(tiny_cloc_checkpoint, val_info, tmp_path, record_draws):
    cfg_path, ckpt = tiny_cloc_checkpoint
    info, _ = val_info
    phrases = info['gt_phrases'][:2]
    demo = load_script('demo/image_demo.py')
    out = str(tmp_path / 'ground.png')
    demo.main([info['img_path'], cfg_path, '--weights', ckpt, '--device', 'cpu', '--texts',
               *phrases, '--out', out, '--pred-out', str(tmp_path / 'ground.json'),
               '--score-thr', '-1'])  # grounding scores are cosines: draw them all
    with open(tmp_path / 'ground.json') as f:
        pred = json.load(f)
    assert pred['phrases'] == phrases
    assert record_draws['texts'] == [f'{p} {s:.2f}' for p, s in zip(phrases, pred['scores'])]
    drawn = mmcv.imread(out, channel_order='rgb')
    factor = np.array([drawn.shape[1] / info['width'], drawn.shape[0] / info['height']] * 2)
    (drawn_boxes, _), = record_draws['bboxes']
    np.testing.assert_allclose(drawn_boxes, np.array(pred['bboxes']) * factor, atol=0.5)

    record_draws['texts'].clear()
    out = str(tmp_path / 'heat.png')
    demo.main([info['img_path'], cfg_path, '--weights', ckpt, '--device', 'cpu', '--texts',
               *phrases, '--task', 'heatmap', '--heatmap-index', '1', '--out', out])
    assert record_draws['texts'] == [f'"{phrases[1]}"']
    heat = mmcv.imread(out, channel_order='rgb')
    assert heat.shape == drawn.shape
    image = mmcv.imresize(mmcv.imread(info['img_path'], channel_order='rgb'), drawn.shape[1::-1])
    assert np.abs(heat.astype(int) - image).mean() > 10  # the overlay changed the picture
