import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine import Config
from mmengine.runner.checkpoint import load_checkpoint
from mmengine.structures import InstanceData

from cllip_mm.mmdet_plugins import ClocRegionClassifier

CLASSES = ('red circle', 'blue square', 'green star')


TINY_CLOC_CFG = osp.join(osp.dirname(__file__), '../../configs/_base_/models/cloc_vit-tiny-p8.py')


@pytest.fixture(autouse=True)
def _mmdet_scope(mmdet_scope):
    """The classifier builds its backbone / detector from mmdet's registry."""


@MODELS.register_module(force=True)
class FixedBoxDetector(BaseDetector):
    """Returns the same boxes / scores for every image (a stand-in box source)."""

    def __init__(self, boxes, scores, **kwargs):
        super().__init__(**kwargs)
        self.boxes, self.scores = torch.tensor(boxes), torch.tensor(scores)

    def predict(self, batch_inputs, batch_data_samples, rescale=True):
        for s in batch_data_samples:
            boxes = self.boxes.clone()
            if rescale:  # as mmdet's detectors: back to the original image
                boxes = boxes / boxes.new_tensor(s.metainfo['scale_factor']).repeat(2)
            s.pred_instances = InstanceData(bboxes=boxes, scores=self.scores.clone(),
                                            labels=torch.zeros(len(self.scores), dtype=torch.long))
        return batch_data_samples

    def loss(self, *args):
        raise NotImplementedError

    def _forward(self, *args):
        raise NotImplementedError

    def extract_feat(self, *args):
        raise NotImplementedError


def build(synthetic_root, checkpoint=None, **kwargs):
    cfg = dict(
        backbone=dict(type='ClocViT', img_size=96, patch_size=8, width=128, layers=4, heads=4,
                      embed_dim=128, patch_token_norm='none', out_strides=(8, )),
        prompter=Config.fromfile(TINY_CLOC_CFG).model.prompter,
        language_model=dict(type='ClocTextModel',
                            tokenizer_path=osp.join(synthetic_root, 'tokenizer'),
                            text_encoder=dict(type='TextTransformer', context_length=40,
                                              width=128, layers=3, heads=4, embed_dim=128)),
        box_source='gt', class_names=CLASSES)
    cfg.update(kwargs)
    model = ClocRegionClassifier(**cfg)
    if checkpoint:
        load_checkpoint(model, checkpoint, strict=True)
    return model.eval()


def sample(boxes, scale_factor=(2., 2.), proposals=None):
    s = DetDataSample(metainfo=dict(img_shape=(64, 96), scale_factor=scale_factor))
    s.gt_instances = InstanceData(bboxes=torch.tensor(boxes), labels=torch.zeros(len(boxes)).long())
    if proposals is not None:
        s.proposals = InstanceData(bboxes=torch.tensor(boxes), scores=torch.tensor(proposals))
    return s


BOXES = [[0., 0., 32., 32.], [40., 8., 88., 56.]]


def test_scores_are_the_cloc_region_text_softmax(synthetic_root, converted_checkpoint, tiny_cloc):
    model = build(synthetic_root, converted_checkpoint, test_cfg=dict(max_per_img=100))
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        result = model.predict(images, [sample(BOXES)])[0].pred_instances
        boxes_norm = torch.tensor(BOXES)[None] / torch.tensor([96., 64., 96., 64.])
        regions = tiny_cloc.embed_regions(images, boxes_norm)[0]
        text = tiny_cloc.embed_texts(list(CLASSES))
        # the pretraining model's temperature as its weights store it (log scale, cap 100)
        scale = min(float(tiny_cloc.state_dict()['region_loss.logit_scale'].exp()), 100.0)
        probs = (scale * regions @ text.t()).softmax(-1)
    assert len(result) == 6  # every (box, class) pair
    expected = sorted(probs.flatten().tolist(), reverse=True)
    assert torch.allclose(result.scores, torch.tensor(expected), atol=1e-5)
    # Boxes go back to the original image (scale factor 2) and labels index CLASSES.
    top = probs.flatten().argmax()
    assert result.labels[0] == top % 3
    assert torch.allclose(result.bboxes[0], torch.tensor(BOXES[int(top) // 3]) / 2)


def test_each_box_gets_its_own_class(synthetic_root, monkeypatch):
    model = build(synthetic_root, class_names=('a', 'b'), test_cfg=dict(max_per_img=2))
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        regions = model.region_embeddings(images, [torch.tensor(BOXES)])[0]
    # Classes whose text embedding is exactly box k's region embedding.
    monkeypatch.setattr(model, 'class_embeddings', lambda names: regions)
    with torch.no_grad():
        result = model.predict(images, [sample(BOXES, scale_factor=(1., 1.))])[0].pred_instances
    pairs = {(tuple(b.tolist()), int(label)) for b, label in zip(result.bboxes, result.labels)}
    assert pairs == {(tuple(BOXES[0]), 0), (tuple(BOXES[1]), 1)}


def test_fvlm_fusion_of_proposal_scores(synthetic_root):
    model = build(synthetic_root, box_source='proposals',
                  score_fusion=dict(base_weight=0.25, novel_weight=0.75,
                                    base_classes=['red circle']))
    probs = torch.tensor([[0.5, 0.3, 0.2]])
    fused = model.fuse_scores(probs, torch.tensor([0.64]), CLASSES)
    expected = torch.tensor([[0.64**0.75 * 0.5**0.25, 0.64**0.25 * 0.3**0.75, 0.64**0.25 * 0.2**0.75]])
    assert torch.allclose(fused, expected)
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, 64, 96),
                            [sample(BOXES, proposals=[0.9, 0.1])])[0].pred_instances
    assert len(out) == 6 and (out.scores <= 1).all()
    # Without fusion the VLM probabilities are used alone: each box's scores sum to 1.
    plain = build(synthetic_root, box_source='proposals')
    with torch.no_grad():
        out = plain.predict(torch.randn(1, 3, 64, 96),
                            [sample(BOXES, proposals=[0.9, 0.1])])[0].pred_instances
    assert out.scores.sum().item() == pytest.approx(2.0, abs=1e-5)


def test_detector_box_source(synthetic_root, monkeypatch):
    """box_source='detector': the detector's boxes (network-input pixels, its own scores)
    are classified and its scores fused, with the answer written out here: classes whose
    text embeddings are the region embeddings of box 0 / box 1, probabilities
    softmax(scale * cos), F-VLM fusion with the default weights (all classes novel:
    det^0.35 * p^0.65), every (box, class) pair, boxes back in each image's own frame.

    Broken variants checked (each fails this test): the detector's scores not fused
    (``get_boxes`` returning None scores); the detector asked for rescaled boxes
    (``rescale=True``: boxes scaled back twice); the scores of the two boxes swapped."""
    model = build(synthetic_root, class_names=('a', 'b'), box_source='detector',
                  detector=dict(type='FixedBoxDetector', boxes=BOXES, scores=[0.8, 0.4]),
                  score_fusion=dict())
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        regions = model.region_embeddings(images, [torch.tensor(BOXES)] * 2)  # [2, 2, D]
    # one class list for both images: each image's region embeddings, the first's here
    monkeypatch.setattr(model, 'class_embeddings', lambda names: regions[0])
    with torch.no_grad():
        out = model.predict(images, [sample([[1., 1., 5., 5.]], scale_factor=(2., 2.)),
                                     sample([[1., 1., 5., 5.]], scale_factor=(1., 1.))])
    scale = min(float(model.logit_scale.exp()), 100.0)
    det = torch.tensor([0.8, 0.4])
    for i, factor in enumerate((2., 1.)):
        probs = (scale * regions[i] @ regions[0].t()).softmax(-1)  # [box, class]
        fused = det[:, None] ** 0.35 * probs ** 0.65
        expected = sorted(((float(fused[k, c]), k, c) for k in range(2) for c in range(2)),
                          reverse=True)
        got = out[i].pred_instances
        assert len(got) == 4
        torch.testing.assert_close(got.scores, torch.tensor([e[0] for e in expected]))
        assert got.labels.tolist() == [e[2] for e in expected]
        torch.testing.assert_close(got.bboxes, torch.tensor([BOXES[e[1]] for e in expected]) / factor)


def test_selection_threshold_topk_and_nms(synthetic_root):
    model = build(synthetic_root, test_cfg=dict(max_per_img=2, score_thr=0.3,
                                                nms=dict(type='nms', iou_threshold=0.5)))
    boxes = torch.tensor([[0., 0., 10., 10.], [0., 0., 10., 11.], [20., 20., 30., 30.]])
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.35, 0.65]])
    out = model.select(boxes, scores)
    # box 1 / class 0 is suppressed by box 0; 0.35 is kept by the threshold but cut by top-2.
    assert out.scores.tolist() == pytest.approx([0.9, 0.65])
    assert out.labels.tolist() == [0, 1]


def test_errors(synthetic_root):
    with pytest.raises(ValueError, match='box_source'):
        build(synthetic_root, box_source='rpn')
    with pytest.raises(ValueError, match='detector'):
        build(synthetic_root, box_source='detector')
    with pytest.raises(ValueError, match='template'):
        build(synthetic_root, prompt_templates=('a photo',))
    model = build(synthetic_root, class_names=None)
    with pytest.raises(ValueError, match='return_classes'):
        model.predict(torch.randn(1, 3, 64, 96), [sample(BOXES)])
    model = build(synthetic_root, box_source='proposals')
    with pytest.raises(ValueError, match='LoadProposals'):
        model.predict(torch.randn(1, 3, 64, 96), [sample(BOXES)])
    with pytest.raises(RuntimeError, match='zero-shot'):
        model.loss(torch.randn(1, 3, 64, 96), [sample(BOXES)])
    # Text embeddings are cached per class list and dropped on load.
    emb = model.class_embeddings(CLASSES)
    assert model.class_embeddings(CLASSES) is emb
    model.load_state_dict(model.state_dict())
    assert model.class_embeddings(CLASSES) is not emb
    assert torch.allclose(F.normalize(emb, dim=-1), emb)


def test_region_embeddings_do_not_depend_on_memory_layout(synthetic_root, converted_checkpoint):
    model = build(synthetic_root, converted_checkpoint)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 64, 96, generator=g)
    boxes = [torch.tensor(BOXES), torch.tensor(BOXES[:1])]
    with torch.no_grad():
        # the reference: contiguous images, each image alone with its own boxes
        expected = [model.region_embeddings(images[i:i + 1].contiguous(), boxes[i:i + 1])[0]
                    for i in range(2)]
        for name, x in {'contiguous': images,
                        'channels_last': images.contiguous(memory_format=torch.channels_last),
                        'permuted_hwc': images.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
                        }.items():
            got = model.region_embeddings(x, boxes)
            torch.testing.assert_close(got[0], expected[0], atol=1e-5, rtol=1e-5, msg=name)
            torch.testing.assert_close(got[1, :1], expected[1], atol=1e-5, rtol=1e-5, msg=name)
