# Copyright (c) cllip_mm contributors. All rights reserved.
import hashlib
import math

import numpy as np
import pytest
import torch

from cllip_mm.models.losses import RegionTextContrastiveLoss, phrase_keys
from cllip_mm.registry import MODELS

# 4 regions on 2 images; "dog" is shared by regions 0 and 2 (multi-positive), "bird" has no
# region (a negative only).
REGIONS = [[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]]
REGION_TEXTS = ['dog', 'cat', 'dog', 'tree']
REGION_IMAGES = [0, 0, 1, 1]
PHRASES = {'dog': [0.9, 0.1], 'cat': [0.5, 0.9], 'tree': [0.1, 1.0], 'bird': [-1.0, 0.3]}


def reference(regions, region_texts, phrases, scale, region_images=None):
    """Multi-positive InfoNCE with plain loops; ``region_images`` -> the 'image' scope."""
    n = len(regions)
    images = region_images or [0] * n
    if region_images is None:
        cols = [(0, text) for text in phrases]  # every distinct phrase
    else:
        cols = []
        for key in zip(images, region_texts):
            if key not in cols:
                cols.append(key)

    def logit(k, c):
        return scale * float(np.dot(regions[k], phrases[cols[c][1]]))

    r2t = 0.0
    for k in range(n):
        allowed = [c for c in range(len(cols)) if cols[c][0] == images[k]]
        own = cols.index((images[k], region_texts[k]))
        r2t -= logit(k, own) - math.log(sum(math.exp(logit(k, c)) for c in allowed))
    t2r, num_cols = 0.0, 0
    for c, (image, text) in enumerate(cols):
        positives = [k for k in range(n) if images[k] == image and region_texts[k] == text]
        if not positives:
            continue
        allowed = [k for k in range(n) if images[k] == image]
        log_norm = math.log(sum(math.exp(logit(k, c)) for k in allowed))
        t2r -= sum(logit(k, c) - log_norm for k in positives) / len(positives)
        num_cols += 1
    return 0.5 * (r2t / n + t2r / num_cols)


def make_inputs(region_texts=REGION_TEXTS, phrase_texts=tuple(PHRASES), regions=REGIONS):
    phrase_texts = list(phrase_texts)
    return dict(
        region_embeds=torch.tensor(regions, requires_grad=True),
        phrase_embeds=torch.tensor([PHRASES[t] for t in phrase_texts], requires_grad=True),
        region_phrase_index=torch.tensor([phrase_texts.index(t) for t in region_texts]),
        phrase_keys=phrase_keys(phrase_texts),
        region_image_index=torch.tensor(REGION_IMAGES[:len(region_texts)]))


def test_phrase_keys():
    keys = phrase_keys(['dog', 'cat', 'dog', ''])
    assert keys.dtype == torch.int64 and keys.shape == (4, )
    assert keys[0] == keys[2] and keys[0] != keys[1] and bool((keys >= 0).all())
    expected = int.from_bytes(hashlib.blake2b(b'dog', digest_size=8).digest(), 'little')
    assert keys[0].item() == expected & ((1 << 63) - 1)  # stable, not a salted hash()
    assert phrase_keys([]).shape == (0, )
    with pytest.raises(TypeError, match=r'phrases\[1\]'):
        phrase_keys(['dog', 3])


def test_uniform_logits_closed_form():
    # Regions 'a', 'a', 'b'. All embeddings equal -> all logits equal: r2t = log K
    # (K distinct phrases) and t2r = log R for every phrase, whatever its number of positives.
    loss_fn = RegionTextContrastiveLoss()
    loss = loss_fn(
        region_embeds=torch.ones(3, 2),
        phrase_embeds=torch.ones(2, 2),
        region_phrase_index=torch.tensor([0, 0, 1]),
        phrase_keys=phrase_keys(['a', 'b']))
    assert loss.item() == pytest.approx(0.5 * (math.log(2) + math.log(3)), rel=1e-6)


@pytest.mark.parametrize('negatives', ['global', 'local'])
def test_multi_positive_against_loops(negatives):
    loss_fn = MODELS.build(dict(type='RegionTextContrastiveLoss', negatives=negatives))
    inputs = make_inputs()
    loss = loss_fn(**inputs)
    expected = reference(REGIONS, REGION_TEXTS, PHRASES, 1 / 0.07)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert inputs['region_embeds'].grad.abs().sum() > 0
    # "bird" has no region but is a negative of region -> text, so it gets a gradient.
    assert inputs['phrase_embeds'].grad[3].abs().sum() > 0


def test_duplicate_phrase_rows_are_deduplicated():
    loss_fn = RegionTextContrastiveLoss(init_logit_scale=math.log(5.0))
    expected = loss_fn(**make_inputs()).item()
    # "dog" twice in the phrase list, regions pointing at either copy: same loss, and only
    # the first copy is used.
    phrase_texts = ['dog', 'cat', 'tree', 'bird', 'dog']
    inputs = make_inputs(phrase_texts=phrase_texts)
    inputs['region_phrase_index'] = torch.tensor([0, 1, 4, 2])
    loss = loss_fn(**inputs)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert loss.item() == pytest.approx(
        reference(REGIONS, REGION_TEXTS, PHRASES, 5.0), rel=1e-5)
    loss.backward()
    assert inputs['phrase_embeds'].grad[0].abs().sum() > 0
    assert inputs['phrase_embeds'].grad[4].abs().sum() == 0


def test_image_scope_against_loops():
    loss_fn = RegionTextContrastiveLoss(negatives='image', init_logit_scale=math.log(5.0))
    inputs = make_inputs()
    loss = loss_fn(**inputs)
    expected = reference(REGIONS, REGION_TEXTS, PHRASES, 5.0, region_images=REGION_IMAGES)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert loss.item() != pytest.approx(reference(REGIONS, REGION_TEXTS, PHRASES, 5.0))
    loss.backward()
    assert torch.isfinite(inputs['region_embeds'].grad).all()
    assert torch.isfinite(loss_fn.logit_scale.grad)
    with pytest.raises(ValueError, match='region_image_index'):
        loss_fn(**{**inputs, 'region_image_index': None})


def test_clamp_at_100_and_shared_scale():
    expected = reference(REGIONS, REGION_TEXTS, PHRASES, 100.0)
    own = RegionTextContrastiveLoss(init_logit_scale=math.log(1000.0))
    assert own.get_scale().item() == pytest.approx(100.0)
    assert own(**make_inputs()).item() == pytest.approx(expected, rel=1e-5)

    shared = RegionTextContrastiveLoss(share_logit_scale=True)
    assert len(list(shared.parameters())) == 0
    clip_scale = torch.nn.Parameter(torch.tensor(math.log(1000.0)))
    loss = shared(**make_inputs(), logit_scale=clip_scale)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match='share_logit_scale=True'):
        shared(**make_inputs())
    with pytest.raises(ValueError, match='own logit_scale'):
        own(**make_inputs(), logit_scale=clip_scale)


@pytest.mark.parametrize('negatives', ['global', 'local', 'image'])
def test_no_regions_gives_connected_zero(negatives):
    loss_fn = RegionTextContrastiveLoss(negatives=negatives)
    region_embeds = torch.zeros(0, 2, requires_grad=True)
    phrase_embeds = torch.ones(1, 2, requires_grad=True)
    loss = loss_fn(region_embeds, phrase_embeds, torch.zeros(0, dtype=torch.long),
                   phrase_keys(['dog']), region_image_index=torch.zeros(0, dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()  # in the graph: every input and the scale get a (zero) gradient
    assert loss_fn.logit_scale.grad is not None and loss_fn.logit_scale.grad.item() == 0
    assert phrase_embeds.grad is not None and region_embeds.grad is not None


def test_bad_inputs():
    loss_fn = RegionTextContrastiveLoss()
    inputs = make_inputs()
    with pytest.raises(ValueError, match=r'region_phrase_index must lie in \[0, 4\)'):
        loss_fn(**{**inputs, 'region_phrase_index': torch.tensor([0, 1, 4, 2])})
    with pytest.raises(ValueError, match='region_phrase_index must be an integer tensor'):
        loss_fn(**{**inputs, 'region_phrase_index': torch.zeros(4)})
    with pytest.raises(ValueError, match='phrase_keys must be int64'):
        loss_fn(**{**inputs, 'phrase_keys': inputs['phrase_keys'].int()})
    with pytest.raises(ValueError, match='same D'):
        loss_fn(**{**inputs, 'phrase_embeds': torch.zeros(4, 3)})
    with pytest.raises(ValueError, match='negatives must be one of'):
        RegionTextContrastiveLoss(negatives='batch')


def filtered_reference(regions, region_texts, phrases, scale, threshold):
    """The paper's negative filtering with plain loops: a (region, text) pair whose text is
    another text with a cosine above ``threshold`` with the region's own leaves both
    denominators."""
    unit = {t: np.asarray(v) / np.linalg.norm(v) for t, v in phrases.items()}
    texts = list(phrases)

    def cos(a, b):
        return float(np.dot(unit[a], unit[b]))

    def logit(k, text):
        return scale * float(np.dot(regions[k], unit[text]))

    n = len(regions)
    r2t = 0.0
    for k in range(n):
        own = region_texts[k]
        allowed = [t for t in texts if t == own or cos(own, t) <= threshold]
        r2t -= logit(k, own) - math.log(sum(math.exp(logit(k, t)) for t in allowed))
    t2r, num_cols = 0.0, 0
    for text in texts:
        positives = [k for k in range(n) if region_texts[k] == text]
        if not positives:
            continue
        allowed = [k for k in range(n)
                   if region_texts[k] == text or cos(text, region_texts[k]) <= threshold]
        log_norm = math.log(sum(math.exp(logit(k, text)) for k in allowed))
        t2r -= sum(logit(k, text) - log_norm for k in positives) / len(positives)
        num_cols += 1
    return 0.5 * (r2t / n + t2r / num_cols)


@pytest.mark.parametrize('local_loss', [True, False])
def test_text_filtering_against_loops(local_loss):
    # Unit phrases: cos(cat, tree) = 0.918 > 0.9 -> cat / tree leave each other's
    # denominators, in both directions; no other pair is above 0.9.
    loss_fn = RegionTextContrastiveLoss(init_logit_scale=math.log(5.0), local_loss=local_loss,
                                        text_filter_threshold=0.9)
    inputs = make_inputs()
    inputs['phrase_embeds'] = torch.nn.functional.normalize(
        inputs['phrase_embeds'].detach(), dim=-1).requires_grad_()
    loss = loss_fn(**inputs)
    expected = filtered_reference(REGIONS, REGION_TEXTS, PHRASES, 5.0, 0.9)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # the filter changes the loss here (the reference without it differs)
    unfiltered = filtered_reference(REGIONS, REGION_TEXTS, PHRASES, 5.0, 1.0)
    assert abs(expected - unfiltered) > 1e-3
    assert loss.item() != pytest.approx(unfiltered, rel=1e-4)
    loss.backward()
    assert torch.isfinite(inputs['phrase_embeds'].grad).all()
    # threshold 1.0 filters nothing: the plain loss
    plain = RegionTextContrastiveLoss(init_logit_scale=math.log(5.0), text_filter_threshold=1.0)
    assert plain(**inputs).item() == pytest.approx(unfiltered, rel=1e-5)


def test_local_loss_filters_only_its_own_share(monkeypatch):
    """With ``local_loss`` the filter is asked for this rank's rows (region -> text) and
    columns (text -> region), never for the [R, C] matrix of the global batch, and the
    loss is the same as the global form's."""
    shapes = []
    original = RegionTextContrastiveLoss.near_duplicate_texts

    def recording(self, col_embeds, region_col, rows=None, cols=None):
        out = original(self, col_embeds, region_col, rows, cols)
        shapes.append((rows is None, cols is None, tuple(out.shape)))
        return out

    monkeypatch.setattr(RegionTextContrastiveLoss, 'near_duplicate_texts', recording)
    inputs = make_inputs()
    losses = {}
    for local in (True, False):
        shapes.clear()
        loss_fn = RegionTextContrastiveLoss(init_logit_scale=math.log(5.0), local_loss=local,
                                            text_filter_threshold=0.9)
        losses[local] = loss_fn(**inputs).item()
        if local:
            # both calls name what they test (one process: its rows are all rows, its
            # columns all columns); neither asks for the default full matrix
            assert len(shapes) == 2 and not any(r and c for r, c, _ in shapes), shapes
    assert losses[True] == pytest.approx(losses[False], rel=1e-6)


def test_text_filtering_with_image_scope_keeps_the_own_text():
    # Threshold -1: every other text is filtered, so each region's only column is its own
    # text and each text's only regions are its positives: both directions give 0.
    loss_fn = RegionTextContrastiveLoss(negatives='image', text_filter_threshold=-1.0)
    loss = loss_fn(**make_inputs())
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match='text_filter_threshold'):
        RegionTextContrastiveLoss(text_filter_threshold=1.5)
