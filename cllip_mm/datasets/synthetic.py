# Copyright (c) cllip_mm contributors. All rights reserved.
"""A seeded generator of a small synthetic region-text dataset (the embedded demo).

Each image is a textured background (stripes, checkers or smooth noise in muted random
colours) with a few coloured shapes (8 colours x 4 shapes) of varied scale, some rotated,
drawn solid, textured (the colour modulated by stripes or blotches) or as an outline,
overlapping by up to ``max_overlap`` of a box (occlusion). Every shape is one region
(tight xyxy pixel box, phrase such as "red circle", score 1.0), and the caption lists
the shapes from left to right: "a red circle, a blue square and an orange star on a
striped background". The output follows the JSON Lines format of
:class:`cllip_mm.datasets.RegionTextDataset`::

    <out>/annotations/{train,val}.jsonl
    <out>/images/{train,val}/000000.jpg ...
    <out>/classes.txt                 all 32 phrases, sorted (a region vocabulary)
    <out>/tokenizer/tokenizer.json    word-level tokenizer of the corpus
    <out>/tokenizer_t5/               T5-style SentencePiece tokenizer of the corpus (the
                                      paper's kind; ``SentencePieceTokenizer`` loads it)

Everything is a function of the arguments: image ``i`` of a split draws from
``numpy.random.default_rng([seed, split_id, i])``.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

#: RGB colours of the objects; the names are the phrases' first word.
COLORS: Dict[str, Tuple[int, int, int]] = {
    'red': (220, 30, 30),
    'green': (30, 165, 55),
    'blue': (35, 70, 225),
    'yellow': (245, 220, 35),
    'purple': (135, 45, 175),
    'orange': (250, 135, 20),
    'white': (245, 245, 245),
    'black': (15, 15, 15),
}
SHAPES = ('circle', 'square', 'triangle', 'star')
BACKGROUNDS = ('striped', 'checkered', 'noisy')
#: Texts added to the tokenizer corpus so that usual prompt templates are in vocabulary.
PROMPT_TEXTS = ('a photo of a {}.', 'a picture of the {}.', 'an image of a {}.',
                'there is a {} in the scene.', 'a {} on a background.')
SPLITS = ('train', 'val')
#: Largest vocabulary of the T5-style demo tokenizer: the corpus has about 30 distinct
#: words, which (with their pieces and characters) fill about 110 pieces.
T5_TOKENIZER_VOCAB_SIZE = 128
#: How objects are drawn: filled with the colour, filled with a texture of the colour,
#: or as an outline of the colour (the inside shows the background).
STYLES = ('solid', 'textured', 'outline')


def all_phrases() -> List[str]:
    """The 32 possible region phrases, sorted."""
    return sorted(f'{c} {s}' for c in COLORS for s in SHAPES)


def _muted_color(rng: np.random.Generator) -> np.ndarray:
    grey = rng.uniform(70, 190)
    return np.clip(grey + rng.uniform(-45, 45, 3), 0, 255)


def _background(rng: np.random.Generator, w: int, h: int) -> Tuple[np.ndarray, str]:
    """Return an RGB uint8 [h, w, 3] texture and its name."""
    kind = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    c1, c2 = _muted_color(rng), _muted_color(rng)
    ys, xs = np.mgrid[0:h, 0:w]
    if kind == 'striped':
        period = int(rng.integers(6, 21))
        coord = (xs, ys, xs + ys, xs - ys)[rng.integers(4)]
        mask = (coord % period) < period / 2
    elif kind == 'checkered':
        cell = int(rng.integers(8, 25))
        mask = (xs // cell + ys // cell) % 2 == 0
    else:
        coarse = rng.uniform(0, 1, (int(rng.integers(3, 9)), int(rng.integers(3, 9))))
        coarse = Image.fromarray((coarse * 255).astype(np.uint8)).resize(
            (w, h), Image.BILINEAR)
        alpha = np.asarray(coarse, np.float32)[..., None] / 255.
        img = c1 * alpha + c2 * (1 - alpha) + rng.normal(0, 10, (h, w, 1))
        return np.clip(img, 0, 255).astype(np.uint8), kind
    img = np.where(mask[..., None], c1, c2) + rng.normal(0, 4, (h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8), kind


def _shape_mask(shape: str, s: int) -> Image.Image:
    """A binary 'L' mask of size s x s with the shape touching its borders."""
    mask = Image.new('L', (s, s), 0)
    draw = ImageDraw.Draw(mask)
    e = s - 1
    if shape == 'circle':
        draw.ellipse([0, 0, e, e], fill=255)
    elif shape == 'square':
        draw.rectangle([0, 0, e, e], fill=255)
    elif shape == 'triangle':
        draw.polygon([(0, e), (e, e), (e / 2, 0)], fill=255)
    elif shape == 'star':
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, e / 2, e / 5)
        draw.polygon([(e / 2 + r * np.cos(a), e / 2 + r * np.sin(a))
                      for r, a in zip(radii, angles)], fill=255)
    else:
        raise ValueError(f'unknown shape {shape!r}')
    return mask


def _overlap_ok(box: Tuple[int, int, int, int], boxes: List[Tuple[int, int, int, int]],
                max_overlap: float) -> bool:
    """Whether ``box`` covers at most ``max_overlap`` of each box's (or its own) area."""
    x1, y1, x2, y2 = box
    area = (x2 - x1) * (y2 - y1)
    for bx1, by1, bx2, by2 in boxes:
        iw = min(x2, bx2) - max(x1, bx1)
        ih = min(y2, by2) - max(y1, by1)
        if iw > 0 and ih > 0 and \
                iw * ih > max_overlap * min(area, (bx2 - bx1) * (by2 - by1)):
            return False
    return True


def _article(phrase: str) -> str:
    return 'an' if phrase[0] in 'aeiou' else 'a'


def make_caption(phrases: List[str], background: str) -> str:
    """"a red circle, a blue square and an orange star on a striped background"."""
    items = [f'{_article(p)} {p}' for p in phrases]
    listed = items[0] if len(items) == 1 else ', '.join(items[:-1]) + ' and ' + items[-1]
    return f'{listed} on {_article(background)} {background} background'


def _styled_fill(rng: np.random.Generator, style: str, mask: Image.Image,
                 color: np.ndarray) -> Tuple[Image.Image, Image.Image]:
    """The RGB fill and the paste mask of one object drawn in ``style``."""
    s = mask.size[0]
    if style == 'outline':
        width = max(2, s // 7)
        # Erode inside a zero border (PIL's filters replicate the edge pixels).
        k = 2 * (width // 2) + 1
        framed = Image.new('L', (s + 2 * k, s + 2 * k), 0)
        framed.paste(mask, (k, k))
        inner = framed.filter(ImageFilter.MinFilter(k)).crop((k, k, k + s, k + s))
        paste = Image.fromarray(np.where(np.asarray(inner) > 0, 0,
                                         np.asarray(mask)).astype(np.uint8), 'L')
        return Image.new('RGB', mask.size, tuple(int(v) for v in color)), paste
    if style == 'textured':
        ys, xs = np.mgrid[0:s, 0:s]
        if rng.random() < 0.5:
            period = int(rng.integers(3, 7))
            pattern = (((xs + ys) if rng.random() < 0.5 else xs) % period < period / 2)
            pattern = pattern.astype(np.float32)
        else:
            pattern = rng.uniform(0, 1, (s, s)).astype(np.float32)
        shade = 0.7 + 0.3 * pattern[..., None]
        pixels = np.clip(color * shade, 0, 255).astype(np.uint8)
        return Image.fromarray(pixels, 'RGB'), mask
    return Image.new('RGB', mask.size, tuple(int(v) for v in color)), mask


def render_sample(rng: np.random.Generator,
                  size_range: Tuple[int, int] = (112, 160),
                  objects_range: Tuple[int, int] = (2, 6),
                  object_scale: Tuple[float, float] = (0.12, 0.42),
                  max_overlap: float = 0.35,
                  rotate_prob: float = 0.5,
                  style_probs: Tuple[float, float, float] = (0.6, 0.2, 0.2)) -> Tuple[Image.Image, dict]:
    """Draw one image; return it (RGB) and its record without the ``image`` key.

    Objects are square-ish, of side ``object_scale`` x the shorter image side, rotated
    by a uniform angle with probability ``rotate_prob``, drawn in one of
    :data:`STYLES` with probabilities ``style_probs``, and carry distinct phrases within
    an image; a new object may cover at most ``max_overlap`` of an earlier one's box.
    An object that cannot be placed after shrinking is left out, so crowded settings
    may give fewer objects than ``objects_range[0]``. Boxes are tight around what is
    drawn (xyxy pixels).
    """
    w, h = (int(v) for v in rng.integers(size_range[0], size_range[1] + 1, 2))
    pixels, background = _background(rng, w, h)
    img = Image.fromarray(pixels, 'RGB')
    num = int(rng.integers(objects_range[0], objects_range[1] + 1))
    placed: List[Tuple[int, int, int, int]] = []
    objects = []
    # Distinct phrases within an image, so that a phrase names one object (grounding
    # and region targets are unambiguous); phrases still repeat across images.
    kinds = [(c, s) for c in COLORS for s in SHAPES]
    style_p = np.asarray(style_probs, np.float64) / np.sum(style_probs)
    for kind_index in rng.choice(len(kinds), size=min(num, len(kinds)), replace=False):
        color, shape = kinds[kind_index]
        side = int(rng.uniform(*object_scale) * min(w, h))
        angle = float(rng.uniform(0, 360)) if rng.random() < rotate_prob else 0.0
        style = STYLES[rng.choice(len(STYLES), p=style_p)]
        box = None
        while box is None and side >= 10:
            mask = _shape_mask(shape, side)
            if angle:
                mask = mask.rotate(angle, resample=Image.BILINEAR, expand=True).point(
                    lambda v: 255 if v >= 128 else 0)
            mw, mh = mask.size
            for _ in range(20):
                if mw > w or mh > h:
                    break
                x, y = int(rng.integers(0, w - mw + 1)), int(rng.integers(0, h - mh + 1))
                if _overlap_ok((x, y, x + mw, y + mh), placed, max_overlap):
                    box = (x, y, x + mw, y + mh)
                    break
            if box is None:
                side = int(side * 0.8)
        if box is None:
            continue
        jitter = rng.integers(-15, 16, 3)
        fill, paste_mask = _styled_fill(rng, style, mask, np.clip(np.array(COLORS[color]) + jitter, 0, 255))
        drawn = paste_mask.getbbox()
        if drawn is None:  # nothing left of a tiny shape
            continue
        placed.append(box)
        img.paste(fill, box[:2], paste_mask)
        left, top, right, bottom = drawn
        x, y = box[:2]
        objects.append((float(x + left), float(y + top), float(x + right),
                        float(y + bottom), f'{color} {shape}'))

    objects.sort(key=lambda o: (o[0] + o[2], o[1] + o[3]))  # left to right
    phrases = [o[4] for o in objects]
    record = dict(
        width=w, height=h,
        caption=make_caption(phrases, background) if phrases else
        f'{_article(background)} {background} background',
        regions=[dict(bbox=list(o[:4]), phrase=o[4], score=1.0) for o in objects])
    return img, record


def generate_synthetic_regions(out_dir: str,
                               num_train: int = 4000,
                               num_val: int = 500,
                               seed: int = 0,
                               min_objects: int = 2,
                               max_objects: int = 6,
                               min_size: int = 112,
                               max_size: int = 160,
                               img_format: str = 'jpg',
                               jpeg_quality: int = 95,
                               build_tokenizer: bool = True,
                               **render_kwargs) -> dict:
    """Write the synthetic dataset under ``out_dir`` (layout in the module docstring).

    ``render_kwargs`` go to :func:`render_sample` (``object_scale``, ``max_overlap``,
    ``rotate_prob``, ``style_probs``); the defaults draw the demo set.

    Returns:
        dict: ``ann_files`` (split -> path), ``num_images`` and ``num_regions`` (split ->
        count), ``classes`` (the 32 phrases), ``tokenizer`` (path of the word-level
        ``tokenizer.json`` or None) and ``tokenizer_t5`` (directory of the T5-style
        tokenizer or None; both are built from the same corpus with ``build_tokenizer``).
    """
    if not 1 <= min_objects <= max_objects:
        raise ValueError(f'need 1 <= min_objects <= max_objects, got '
                         f'{min_objects}, {max_objects}')
    if not 32 <= min_size <= max_size:
        raise ValueError(f'need 32 <= min_size <= max_size, got {min_size}, {max_size}')
    if img_format not in ('jpg', 'png'):
        raise ValueError(f"img_format must be 'jpg' or 'png', got {img_format!r}")
    save_kwargs = dict(quality=jpeg_quality) if img_format == 'jpg' else {}

    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    summary: dict = dict(ann_files={}, num_images={}, num_regions={},
                         classes=all_phrases(), tokenizer=None, tokenizer_t5=None)
    corpus: List[str] = []
    for split_id, (split, num) in enumerate(zip(SPLITS, (num_train, num_val))):
        img_dir = osp.join('images', split)
        os.makedirs(osp.join(out_dir, img_dir), exist_ok=True)
        ann_file = osp.join(out_dir, 'annotations', f'{split}.jsonl')
        num_regions = 0
        with open(ann_file, 'w', encoding='utf-8') as f:
            for i in range(num):
                rng = np.random.default_rng([seed, split_id, i])
                img, record = render_sample(rng, (min_size, max_size),
                                            (min_objects, max_objects), **render_kwargs)
                image = f'{img_dir}/{i:06d}.{img_format}'
                img.save(osp.join(out_dir, image), **save_kwargs)
                f.write(json.dumps(dict(image=image, **record)) + '\n')
                num_regions += len(record['regions'])
                corpus.append(record['caption'])
        summary['ann_files'][split] = ann_file
        summary['num_images'][split] = num
        summary['num_regions'][split] = num_regions

    with open(osp.join(out_dir, 'classes.txt'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(summary['classes']) + '\n')
    if build_tokenizer:
        from cllip_mm.text.build_demo_tokenizer import (
            build_sentencepiece_tokenizer,
            build_word_level_tokenizer,
        )
        corpus += summary['classes']
        corpus += [t.format(p) for t in PROMPT_TEXTS for p in summary['classes']]
        corpus += [f'{_article(b)} {b} background' for b in BACKGROUNDS]
        tokenizer_dir = osp.join(out_dir, 'tokenizer')
        build_word_level_tokenizer(corpus, tokenizer_dir)
        summary['tokenizer'] = osp.join(tokenizer_dir, 'tokenizer.json')
        t5_tokenizer_dir = osp.join(out_dir, 'tokenizer_t5')
        build_sentencepiece_tokenizer(corpus, t5_tokenizer_dir, vocab_size=T5_TOKENIZER_VOCAB_SIZE)
        summary['tokenizer_t5'] = t5_tokenizer_dir
    return summary
