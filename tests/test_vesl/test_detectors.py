"""OWLv2Detector on a tiny random OWLv2: per-image queries, padding, pixel boxes."""
import numpy as np
import pytest
import torch
from PIL import Image

from cllip_mm.registry import VESL_STAGES


@pytest.fixture(scope='module')
def detector(vesl_models):
    return VESL_STAGES.build(dict(type='OWLv2Detector', model_path=vesl_models['detector']))


def images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
            for w, h in ((80, 40), (30, 60), (50, 50))]


def test_boxes_in_pixels_of_each_image_and_own_phrases(detector):
    imgs = images()
    phrases = [['red dog'], ['green grass', 'old car', 'dog'], []]
    out = detector(imgs, phrases)
    num_patches = (64 // 16) ** 2
    for img, ps, r in zip(imgs, phrases, out):
        assert len(r) == (num_patches if ps else 0)
        if not ps:
            continue
        w, h = img.size
        assert r.labels.max() < len(ps)   # the padding queries never win
        assert (r.bboxes[:, 0::2] <= w).all() and (r.bboxes[:, 1::2] <= h).all()
        assert (r.bboxes >= 0).all() and ((r.scores >= 0) & (r.scores <= 1)).all()
    # Batched call == one image at a time (queries padded to the longest list).
    alone = detector([imgs[0]], [phrases[0]])[0]
    torch.testing.assert_close(alone.bboxes, out[0].bboxes, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(alone.scores, out[0].scores, atol=1e-5, rtol=1e-4)


def test_matches_transformers_post_processing_on_the_padded_square(detector):
    """transformers' own OWLv2 post-processing, given the padded square size,
    gives the same boxes and scores (before clipping to the image)."""
    img = images()[1]  # 30 x 60: padded to 60 x 60
    phrases = ['red dog', 'cat']
    ours = detector([img], [phrases])[0]
    inputs = detector.processor(text=[phrases], images=[img], return_tensors='pt')
    with torch.no_grad():
        outputs = detector.model(**inputs)
    ref = detector.processor.image_processor.post_process_object_detection(
        outputs, threshold=0.0, target_sizes=torch.tensor([[60, 60]]))[0]
    ref_boxes = ref['boxes'].clone()
    ref_boxes[:, 0::2] = ref_boxes[:, 0::2].clamp(0, 30)
    ref_boxes[:, 1::2] = ref_boxes[:, 1::2].clamp(0, 60)
    torch.testing.assert_close(ours.bboxes, ref_boxes, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(ours.scores, ref['scores'], atol=1e-5, rtol=1e-4)
    assert ours.labels.tolist() == ref['labels'].tolist()


def test_bad_path_and_template(tmp_path, vesl_models):
    with pytest.raises(FileNotFoundError, match='model_path'):
        VESL_STAGES.build(dict(type='OWLv2Detector', model_path=str(tmp_path / 'x')))
    with pytest.raises(ValueError, match='query_template'):
        VESL_STAGES.build(dict(type='OWLv2Detector', model_path=vesl_models['detector'],
                               query_template='a photo'))


def test_bfloat16_weights_and_inputs(vesl_models, detector):
    """dtype='bfloat16' casts the weights and the pixel inputs (what a GPU run uses);
    scores stay close to float32's."""
    bf16 = VESL_STAGES.build(dict(type='OWLv2Detector', model_path=vesl_models['detector'],
                                  dtype='bfloat16'))
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    img, phrases = images()[:1], [['red dog', 'cat']]
    out, ref = bf16(img, phrases)[0], detector(img, phrases)[0]
    assert out.bboxes.dtype == torch.float32 and len(out) == len(ref)
    assert (out.scores - ref.scores).abs().max() < 0.1
