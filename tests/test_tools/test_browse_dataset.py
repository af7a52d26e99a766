"""tools/analysis_tools/browse_dataset.py draws the boxes and phrases after the pipeline."""
import importlib.util
import os.path as osp

import mmcv
import numpy as np
from mmengine.config import Config

from cllip_mm.registry import DATASETS
from cllip_mm.visualization import RegionTextVisualizer

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_browse_val_split(tiny_cloc_checkpoint, tmp_path, monkeypatch):
    cfg_path, _ = tiny_cloc_checkpoint
    drawn = []
    original = RegionTextVisualizer.draw_labelled_boxes

    def record(self, bboxes, texts, colours):
        drawn.append((np.array(bboxes), list(texts)))
        return original(self, bboxes, texts, colours)

    monkeypatch.setattr(RegionTextVisualizer, 'draw_labelled_boxes', record)
    spec = importlib.util.spec_from_file_location(
        'browse_dataset', osp.join(REPO, 'tools/analysis_tools/browse_dataset.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out_dir = str(tmp_path / 'browse')
    tool.main([cfg_path, '--split', 'val', '--num', '2', '--output-dir', out_dir, '--not-show',
               '--min-size', '128'])

    dataset = DATASETS.build(Config.fromfile(cfg_path).val_dataloader.dataset)
    assert len(drawn) == 2
    for index, (boxes, texts) in enumerate(drawn):
        sample = dataset[index]['data_samples']
        # the pipeline resized to 32 px; the picture is enlarged to 128
        np.testing.assert_allclose(boxes, sample.gt_regions.bboxes.numpy() * 4, atol=1e-4)
        assert texts == list(sample.gt_regions.phrases)
        name = osp.splitext(osp.basename(sample.img_path))[0]
        picture = mmcv.imread(osp.join(out_dir, f'{index:06d}_{name}.png'))
        assert picture.shape == (128, 128, 3)


def test_detection_samples_are_named_like_mmdet_datasets():
    import torch
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmengine.structures import InstanceData

    spec = importlib.util.spec_from_file_location(
        'browse_dataset', osp.join(REPO, 'tools/analysis_tools/browse_dataset.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)

    def sample(labels, **meta):
        s = DetDataSample(metainfo=meta)
        s.gt_instances = InstanceData(bboxes=HorizontalBoxes(torch.rand(len(labels), 4)),
                                      labels=torch.tensor(labels))
        return s

    # COCO-style: the dataset's classes
    out = tool.as_region_sample(sample([1, 0]), dict(classes=('cat', 'dog')))
    assert out.gt_regions.phrases == ['dog', 'cat'] and out.gt_regions.bboxes.shape == (2, 4)
    # ODVG OD mode: the sample's label map
    out = tool.as_region_sample(sample([0], text={'0': 'person'}), {})
    assert out.gt_regions.phrases == ['person']
    # grounding: caption spans of each label
    caption = 'a red circle left of a blue square'
    out = tool.as_region_sample(sample([1, 0], text=caption,
                                       tokens_positive={0: [[2, 12]], 1: [[23, 34]]}), {})
    assert out.gt_regions.phrases == ['blue square', 'red circle']
