# Copyright (c) cllip_mm contributors. All rights reserved.
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope

from cllip_mm.evaluation import ImageTextRetrievalMetric
from cllip_mm.registry import METRICS
from cllip_mm.structures import RegionTextDataSample


def without_left_out_count(metrics):
    """The metrics minus ``*/num_images_left_out``, which must be 0 (nothing left out)."""
    counts = [k for k in metrics if k.endswith('/num_images_left_out')]
    assert len(counts) == 1 and metrics.pop(counts[0]) == 0, metrics
    return metrics


def embeds_with_similarity(sims: torch.Tensor):
    """Unit image and text embeddings [N, 2N] with ``images @ texts.T == sims``.

    Image i is the basis vector e_i; text j is column j of ``sims`` completed to unit
    norm in its own extra dimension N + j (needs column norms <= 1).
    """
    n = sims.shape[0]
    images = torch.eye(n, 2 * n, dtype=torch.float64)
    texts = torch.zeros(n, 2 * n, dtype=torch.float64)
    texts[:, :n] = sims.T
    texts[torch.arange(n), n + torch.arange(n)] = (1 - (sims**2).sum(0)).sqrt()
    assert torch.allclose(images @ texts.T, sims)
    return images, texts


def make_samples(sims, captions, img_paths=None):
    images, texts = embeds_with_similarity(torch.as_tensor(sims, dtype=torch.float64))
    img_paths = img_paths or [f'{i}.jpg' for i in range(len(captions))]
    samples = []
    for image, text, caption, path in zip(images, texts, captions, img_paths):
        sample = RegionTextDataSample(metainfo=dict(img_path=path, caption=caption))
        sample.image_embed = image.float()
        sample.text_embed = text.float()
        samples.append(sample)
    return samples


def run(samples, **kwargs):
    evaluator = Evaluator(ImageTextRetrievalMetric(**kwargs))
    evaluator.process(samples)
    return without_left_out_count(evaluator.evaluate(len(samples)))


def test_perfect():
    metrics = run(make_samples(torch.eye(5) * 0.9, [f'c{i}' for i in range(5)]))
    assert set(metrics) == {f'retrieval/{d}_R@{k}' for d in ('i2t', 't2i', 'mean')
                            for k in (1, 5, 10)} | {'retrieval/num_images', 'retrieval/num_texts'}
    assert metrics.pop('retrieval/num_images') == metrics.pop('retrieval/num_texts') == 5
    assert all(v == 1.0 for v in metrics.values())


def test_known_permutation():
    # Images 0 and 1 prefer each other's caption (their own comes second), 2 and 3
    # are right; the same holds from the texts' side.
    sims = [[0.2, 0.5, 0.1, 0.0],
            [0.4, 0.3, 0.0, 0.1],
            [0.0, 0.1, 0.5, 0.2],
            [0.1, 0.0, 0.2, 0.4]]
    metrics = run(make_samples(sims, ['a', 'b', 'c', 'd']), topk=(1, 2))
    assert metrics == pytest.approx({
        'retrieval/i2t_R@1': 0.5, 'retrieval/i2t_R@2': 1.0,
        'retrieval/t2i_R@1': 0.5, 'retrieval/t2i_R@2': 1.0,
        'retrieval/mean_R@1': 0.5, 'retrieval/mean_R@2': 1.0,
        'retrieval/num_images': 4, 'retrieval/num_texts': 4})


SIMS_DUP = [[0.1, 0.5, 0.2],
            [0.5, 0.1, 0.25],
            [0.35, 0.1, 0.3]]


def test_duplicate_caption():
    # Images 0 and 1 share the caption 'a dog': texts 0 and 1 are both right for both.
    # Image 2 prefers text 0 (0.35 > 0.3): its only miss. t2i: every text's best
    # match is a matching image.
    metrics = run(make_samples(SIMS_DUP, ['a dog', 'a dog', 'a cat']), topk=1)
    assert metrics == pytest.approx({'retrieval/i2t_R@1': 2 / 3, 'retrieval/t2i_R@1': 1.0,
                                     'retrieval/mean_R@1': 5 / 6, 'retrieval/num_images': 3,
                                     'retrieval/num_texts': 3})
    # Exact string equality: a different spelling is a different caption.
    metrics = run(make_samples(SIMS_DUP, ['a dog', 'A dog', 'a cat']), topk=1,
                  same_image_positive=False)
    assert metrics['retrieval/i2t_R@1'] == 0.0


def test_same_image_positive():
    # Two captions of one image (same img_path) match each other's image.
    samples = make_samples(SIMS_DUP, ['a dog', 'a puppy', 'a cat'],
                           ['x.jpg', 'x.jpg', 'y.jpg'])
    metrics = run(samples, topk=1)
    assert metrics['retrieval/i2t_R@1'] == pytest.approx(2 / 3)
    assert metrics['retrieval/t2i_R@1'] == 1.0
    metrics = run(samples, topk=1, same_image_positive=False)
    # i2t: image 0 -> text 0 at 0.1 behind 0.5, 0.2; image 1 likewise; image 2 behind 0.35
    # t2i: text 0 -> image 0 at 0.1 behind 0.5, 0.35; text 1 ties 0.1 with image 2 (a
    # tie counts against the model); text 2 -> image 2 at 0.3, best.
    assert metrics['retrieval/i2t_R@1'] == 0.0
    assert metrics['retrieval/t2i_R@1'] == pytest.approx(1 / 3)


def test_ties_count_against_the_model():
    samples = make_samples(torch.full((3, 3), 0.3), ['a', 'b', 'c'])
    metrics = run(samples, topk=(1, 2, 3))
    assert metrics['retrieval/i2t_R@1'] == 0.0 and metrics['retrieval/t2i_R@2'] == 0.0
    assert metrics['retrieval/i2t_R@3'] == 1.0


def test_chunking_matches_a_reference():
    torch.manual_seed(0)
    n, d = 50, 16
    images, texts = torch.randn(n, d), torch.randn(n, d)
    captions = [f'c{i % 40}' for i in range(n)]  # ten duplicated captions
    samples = []
    for i in range(n):
        # unnormalised embeddings: the metric uses cosine similarity
        samples.append(dict(img_path=f'{i}.jpg', caption=captions[i],
                            image_embed=images[i] * (i + 1), text_embed=texts[i]))
    metric = ImageTextRetrievalMetric(chunk_size=7, topk=(1, 3, 10))
    metric.process({}, samples)
    metrics = metric.evaluate(n)

    # reference: sort each row, find the first matching candidate
    sims = torch.nn.functional.normalize(images, dim=1) @ \
        torch.nn.functional.normalize(texts, dim=1).T
    match = torch.tensor([[a == b for b in captions] for a in captions])
    for direction, s in (('i2t', sims), ('t2i', sims.T)):
        order = s.argsort(dim=1, descending=True)
        first = match.gather(1, order).float().argmax(dim=1)
        for k in (1, 3, 10):
            assert metrics[f'retrieval/{direction}_R@{k}'] == pytest.approx(
                (first < k).float().mean().item())
    assert 0 < metrics['retrieval/i2t_R@3'] < metrics['retrieval/i2t_R@10'] < 1

    whole = ImageTextRetrievalMetric(topk=(1, 3, 10))
    whole.process({}, samples)
    assert whole.evaluate(n) == pytest.approx(metrics)


def test_bad_input():
    sample = make_samples([[0.5]], ['a'], ['bad.jpg'])[0]
    del sample.text_embed
    with pytest.raises(KeyError, match=r'bad\.jpg.*text_embed'):
        run([sample])
    sample = make_samples([[0.5]], ['a'], ['flat.jpg'])[0]
    sample.image_embed = torch.rand(1, 4)
    with pytest.raises(ValueError, match=r'flat\.jpg.*image_embed'):
        run([sample])
    a, b = make_samples([[0.5, 0], [0, 0.5]], ['a', 'b'])
    b.text_embed = torch.rand(3)
    with pytest.raises(ValueError, match='same width'):
        run([a, b])


def test_registry_build():
    assert METRICS.get('ImageTextRetrievalMetric') is ImageTextRetrievalMetric
    with DefaultScope.overwrite_default_scope('cllip_mm'):
        evaluator = Evaluator([dict(type='ImageTextRetrievalMetric', prefix='coco')])
    assert isinstance(evaluator.metrics[0], ImageTextRetrievalMetric)
    assert evaluator.metrics[0].prefix == 'coco'


def test_several_captions_per_image():
    """COCO / Flickr30k: one image, K captions (``captions`` + ``text_embeds``).

    Images e0, e1, e2; each text's cosines with them are given. i2t: every image's best
    own caption beats the others' -> all hits. t2i: 'b' (image 0 at 0.1) loses to image
    1 (0.5), 'e' (image 2 at 0.6) to image 0 (0.7); the other three are right.
    """
    def text(*sims):  # a unit vector with these cosines against e0, e1, e2
        v = torch.zeros(6)
        v[:3] = torch.tensor(sims)
        v[3 + len(sims) - 1] = (1 - v[:3].pow(2).sum()).sqrt()
        return v

    samples = []
    for i, (captions, texts) in enumerate([
            (['a', 'b'], [text(0.9, 0.0, 0.0), text(0.1, 0.5, 0.0)]),
            (['c', 'd'], [text(0.0, 0.2, 0.0), text(0.0, 0.8, 0.1)]),
            (['e'], [text(0.7, 0.0, 0.6)])]):
        sample = RegionTextDataSample(metainfo=dict(img_path=f'{i}.jpg', captions=captions))
        sample.image_embed = torch.eye(6)[i]
        sample.text_embeds = torch.stack(texts)
        samples.append(sample)
    metrics = run(samples, topk=(1, 2))
    assert metrics['retrieval/num_images'] == 3 and metrics['retrieval/num_texts'] == 5
    assert metrics['retrieval/i2t_R@1'] == 1.0
    # t2i ranks: a 0, b 1, c 0 (0.2 vs 0.0), d 0, e 1.
    assert metrics['retrieval/t2i_R@1'] == pytest.approx(3 / 5)
    assert metrics['retrieval/t2i_R@2'] == 1.0
    # The same string under two images matches both: 'e' is also a caption of image 0.
    samples[0].set_metainfo(dict(captions=['a', 'e']))
    assert run(samples, topk=1)['retrieval/t2i_R@1'] == pytest.approx(4 / 5)
