"""RegionTextVisualizer: boxes, labels and heat maps land where and in the colour they should."""
import mmcv
import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData, PixelData

from cllip_mm.registry import VISUALIZERS
from cllip_mm.structures import RegionTextDataSample
from cllip_mm.visualization import DEFAULT_PALETTE, RegionTextVisualizer

_count = [0]


def make_visualizer(**kwargs):
    _count[0] += 1
    return VISUALIZERS.build(dict(type='RegionTextVisualizer', name=f'test_vis_{_count[0]}',
                                  **kwargs))


def near(image, xy, colour, radius=1, tol=30):
    """Whether some pixel within ``radius`` of ``xy`` (x, y) has ``colour`` (RGB)."""
    x, y = int(round(xy[0])), int(round(xy[1]))
    patch = image[max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1]
    return bool((np.abs(patch.astype(int) - colour).max(-1) <= tol).any())


def pred_sample():
    sample = RegionTextDataSample()
    sample.pred_regions = InstanceData(
        bboxes=torch.tensor([[10., 30., 60., 70.], [30., 75., 90., 95.]]),
        label_names=['red circle', 'blue square'], scores=torch.tensor([0.9, 0.4]))
    return sample


def test_predicted_boxes_and_labels(tmp_path, monkeypatch):
    texts = []
    original = RegionTextVisualizer.draw_texts

    def record(self, t, *args, **kwargs):
        texts.extend([t] if isinstance(t, str) else t)
        return original(self, t, *args, **kwargs)

    monkeypatch.setattr(RegionTextVisualizer, 'draw_texts', record)
    image = np.full((100, 100, 3), 128, np.uint8)
    vis = make_visualizer(line_width=3)
    drawn = vis.add_datasample('x', image, pred_sample(), out_file=str(tmp_path / 'a.png'))
    assert texts == ['red circle 0.90', 'blue square 0.40']
    first, second = np.array(DEFAULT_PALETTE[0]), np.array(DEFAULT_PALETTE[1])
    assert near(drawn, (10, 50), first) and near(drawn, (60, 50), first)  # box 1 left / right
    assert near(drawn, (90, 90), second) and near(drawn, (60, 95), second)  # box 2 right / bottom
    assert not near(drawn, (10, 50), second, tol=60)
    assert (drawn[50, 35] == 128).all()  # inside box 1: untouched
    assert (drawn[0:8, 70:95] == 128).all()  # far from every box and label
    np.testing.assert_array_equal(mmcv.imread(str(tmp_path / 'a.png'), channel_order='rgb'), drawn)

    texts.clear()
    drawn = make_visualizer(line_width=3).add_datasample('x', image, pred_sample(),
                                                         out_file=str(tmp_path / 'b.png'),
                                                         pred_score_thr=0.5)
    assert texts == ['red circle 0.90']
    assert not near(drawn, (90, 90), second, tol=60)


def test_ground_truth_and_enlarging(tmp_path):
    sample = RegionTextDataSample()
    sample.gt_regions = InstanceData(bboxes=torch.tensor([[5., 10., 20., 30.], [25., 5., 45., 45.]]),
                                     phrases=['cat', 'cat'])
    image = np.full((50, 50, 3), 200, np.uint8)
    vis = make_visualizer(min_size=100, line_width=2)
    drawn = vis.add_datasample('x', image, sample, draw_pred=False, out_file=str(tmp_path / 'g.png'))
    assert drawn.shape == (100, 100, 3)
    colour = np.array(DEFAULT_PALETTE[0])  # one text, one colour
    assert near(drawn, (10, 40), colour) and near(drawn, (40, 40), colour)  # x2 scaled
    assert near(drawn, (90, 60), colour) and near(drawn, (70, 90), colour)


def test_heatmap_overlay():
    sample = RegionTextDataSample()
    maps = torch.zeros(2, 40, 60)
    maps[0, :, :30] = 1.0  # text 0 lives in the left half
    maps[1, :, 30:] = 1.0
    sample.pred_similarity = PixelData(maps=maps, metainfo=dict(texts=('left', 'right')))
    image = np.full((40, 60, 3), 128, np.uint8)
    for index, (hot, cold) in enumerate(((10, 50), (50, 10))):
        drawn = make_visualizer().add_datasample('x', image, sample, heatmap_index=index)
        assert drawn[30, hot, 0] > drawn[30, hot, 2] + 40  # jet: high is red
        assert drawn[30, cold, 2] > drawn[30, cold, 0] + 40  # low is blue
    with pytest.raises(IndexError):
        make_visualizer().add_datasample('x', image, sample, heatmap_index=2)
