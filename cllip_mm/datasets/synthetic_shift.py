# Copyright (c) cllip_mm contributors. All rights reserved.
"""Shifted evaluation sets for the synthetic demo: same vocabulary and caption grammar,
different rendering.

The demo's training generator (:mod:`cllip_mm.datasets.synthetic`) pastes binary shape
masks onto textures. These sets are drawn by other code, so that a model which only
learnt the generator's quirks is caught out:

* objects are anti-aliased polygons rasterised at 4x and downsampled, with a larger
  colour jitter and a shading gradient across the object;
* backgrounds named as in training ('striped', 'checkered', 'noisy') are rendered
  differently: sine waves, rotated checkerboards, scattered grey dots;
* unlabelled grey clutter (lines, rings) is drawn under the objects.

Shifts (:data:`SHIFTS`):

* ``small_crowded``: larger images (144-192 px), 5-8 small objects (10-20 % of the
  shorter side, the training set draws 12-42 %), clutter;
* ``restyled``: every object rotated and drawn hatched, as a thin outline or with a
  strong gradient, then the image blurred and saved at JPEG quality 75.

Layout (as the demo set, val split only)::

    <out>/annotations/val.jsonl
    <out>/images/val/000000.jpg ...
    <out>/classes.txt

Image ``i`` draws from ``numpy.random.default_rng([seed, shift_id, i])``.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .synthetic import BACKGROUNDS, COLORS, SHAPES, _article, _overlap_ok, all_phrases, make_caption

SUPERSAMPLE = 4
SHIFTS: Dict[str, dict] = {
    'small_crowded': dict(size_range=(144, 192), objects_range=(5, 8), object_scale=(0.10, 0.20),
                          rotate_prob=0.0, styles=(('gradient', 1.0), ), blur=0.0, jpeg_quality=90,
                          clutter=(4, 9)),
    'restyled': dict(size_range=(112, 160), objects_range=(3, 5), object_scale=(0.20, 0.38),
                     rotate_prob=1.0, styles=(('hatched', 0.35), ('thin_outline', 0.35),
                                              ('gradient', 0.3)),
                     blur=0.7, jpeg_quality=75, clutter=(0, 3)),
}


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> List[Tuple[float, float]]:
    """Vertices of ``shape`` of circumradius ``r`` centred at (cx, cy), rotated."""
    if shape == 'circle':
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        radii = np.full_like(t, r)
    elif shape == 'square':
        t = np.pi / 4 + np.arange(4) * np.pi / 2
        radii = np.full(4, r)
    elif shape == 'triangle':
        t = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        radii = np.full(3, r)
    elif shape == 'star':
        t = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, 0.42 * r)
    else:
        raise ValueError(f'unknown shape {shape!r}')
    t = t + np.deg2rad(angle)
    return [(cx + q * np.cos(a), cy + q * np.sin(a)) for q, a in zip(radii, t)]


def _background(rng: np.random.Generator, w: int, h: int) -> Tuple[np.ndarray, str]:
    """RGB float [h, w, 3] and its name, rendered unlike the training textures."""
    kind = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    c1, c2 = (np.clip(rng.uniform(60, 200) + rng.uniform(-30, 30, 3), 0, 255) for _ in range(2))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 'striped':  # sine waves along a random direction, wobbling
        a = rng.uniform(0, np.pi)
        u = xs * np.cos(a) + ys * np.sin(a) + 4 * np.sin(ys * rng.uniform(0.05, 0.15))
        alpha = 0.5 + 0.5 * np.sin(2 * np.pi * u / rng.uniform(8, 24))
    elif kind == 'checkered':  # a checkerboard rotated by a random angle
        a = rng.uniform(0, np.pi / 2)
        cell = rng.uniform(7, 20)
        u, v = xs * np.cos(a) + ys * np.sin(a), -xs * np.sin(a) + ys * np.cos(a)
        alpha = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)
    else:  # scattered grey dots on a flat colour
        alpha = np.zeros((h, w), np.float32)
        for _ in range(int(w * h / 60)):
            x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(1, 3)
            alpha[(xs - x)**2 + (ys - y)**2 <= r * r] = 1.0
    img = c1 * alpha[..., None] + c2 * (1 - alpha[..., None]) + rng.normal(0, 6, (h, w, 1))
    return img, kind


def _clutter(rng: np.random.Generator, draw: ImageDraw.ImageDraw, w: int, h: int, count: int) -> None:
    """Unlabelled low-saturation grey lines and rings (distractors), at supersampled scale."""
    s = SUPERSAMPLE
    for _ in range(count):
        grey = int(rng.uniform(40, 210))
        color = tuple(int(np.clip(grey + rng.uniform(-12, 12), 0, 255)) for _ in range(3))
        x, y = rng.uniform(0, w) * s, rng.uniform(0, h) * s
        if rng.random() < 0.5:
            x2, y2 = x + rng.uniform(-40, 40) * s, y + rng.uniform(-40, 40) * s
            draw.line([(x, y), (x2, y2)], fill=color, width=int(rng.integers(1, 4)) * s)
        else:
            r = rng.uniform(4, 14) * s
            draw.ellipse([x - r, y - r, x + r, y + r], outline=color, width=int(rng.integers(1, 3)) * s)


def _draw_object(rng: np.random.Generator, canvas: Image.Image, style: str, shape: str,
                 color: np.ndarray, poly: List[Tuple[float, float]]) -> None:
    """Draw one object on the supersampled ``canvas`` in ``style``."""
    s = SUPERSAMPLE
    mask = Image.new('L', canvas.size, 0)
    mdraw = ImageDraw.Draw(mask)
    if style == 'thin_outline':
        mdraw.polygon(poly, outline=255, width=int(rng.integers(2, 4)) * s)
        canvas.paste(tuple(int(v) for v in color), (0, 0), mask)
        return
    mdraw.polygon(poly, fill=255)
    xs = np.array([p[0] for p in poly])
    ys = np.array([p[1] for p in poly])
    x1, y1, x2, y2 = (int(np.floor(xs.min())), int(np.floor(ys.min())), int(np.ceil(xs.max())),
                      int(np.ceil(ys.max())))
    bw, bh = max(1, x2 - x1), max(1, y2 - y1)
    gy, gx = np.mgrid[0:bh, 0:bw].astype(np.float32)
    if style == 'hatched':
        spacing = int(rng.integers(3, 6)) * s
        lines = ((gx + gy) % spacing < spacing * 0.55) | ((gx - gy) % spacing < spacing * 0.3)
        region = np.asarray(mask.crop((x1, y1, x1 + bw, y1 + bh))) > 0
        keep = region & lines
        # The outline keeps the shape readable; the inside is a cross-hatch of the colour.
        mdraw2 = Image.new('L', canvas.size, 0)
        ImageDraw.Draw(mdraw2).polygon(poly, outline=255, width=2 * s)
        keep |= np.asarray(mdraw2.crop((x1, y1, x1 + bw, y1 + bh))) > 0
        patch = Image.new('RGB', (bw, bh), tuple(int(v) for v in color))
        canvas.paste(patch, (x1, y1), Image.fromarray((keep * 255).astype(np.uint8), 'L'))
        return
    # 'gradient': the colour shaded along a random direction (strong in 'restyled').
    a = rng.uniform(0, 2 * np.pi)
    ramp = (gx * np.cos(a) + gy * np.sin(a))
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    shade = 0.7 + 0.45 * ramp
    pixels = np.clip(color * shade[..., None], 0, 255).astype(np.uint8)
    canvas.paste(Image.fromarray(pixels, 'RGB'), (x1, y1), mask.crop((x1, y1, x1 + bw, y1 + bh)))


def render_shifted_sample(rng: np.random.Generator, shift: str) -> Tuple[Image.Image, dict]:
    """One image of ``shift`` (RGB) and its record without the ``image`` key."""
    cfg = SHIFTS[shift]
    s = SUPERSAMPLE
    w, h = (int(v) for v in rng.integers(cfg['size_range'][0], cfg['size_range'][1] + 1, 2))
    background, bg_name = _background(rng, w, h)
    canvas = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8), 'RGB').resize(
        (w * s, h * s), Image.NEAREST)
    draw = ImageDraw.Draw(canvas)
    _clutter(rng, draw, w, h, int(rng.integers(cfg['clutter'][0], cfg['clutter'][1] + 1)))

    styles, probs = zip(*cfg['styles'])
    kinds = [(c, sh) for c in COLORS for sh in SHAPES]
    num = int(rng.integers(cfg['objects_range'][0], cfg['objects_range'][1] + 1))
    placed: List[Tuple[int, int, int, int]] = []
    objects = []
    for kind_index in rng.choice(len(kinds), size=num, replace=False):
        color_name, shape = kinds[kind_index]
        r = rng.uniform(*cfg['object_scale']) * min(w, h) / 2
        angle = float(rng.uniform(0, 360)) if rng.random() < cfg['rotate_prob'] else 0.0
        for _ in range(30):
            cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
            poly = _polygon(shape, cx, cy, r, angle)
            xs, ys = [p[0] for p in poly], [p[1] for p in poly]
            box = (max(0.0, min(xs)), max(0.0, min(ys)), min(float(w), max(xs)), min(float(h), max(ys)))
            if _overlap_ok(tuple(int(v) for v in box), placed, 0.3):
                break
        else:
            continue
        placed.append(tuple(int(v) for v in box))
        color = np.clip(np.array(COLORS[color_name]) + rng.integers(-25, 26, 3), 0, 255)
        style = styles[rng.choice(len(styles), p=np.asarray(probs) / sum(probs))]
        _draw_object(rng, canvas, style, shape, color, [(x * s, y * s) for x, y in poly])
        objects.append((*[round(float(v), 2) for v in box], f'{color_name} {shape}'))

    img = canvas.resize((w, h), Image.LANCZOS)
    if cfg['blur']:
        img = img.filter(ImageFilter.GaussianBlur(cfg['blur']))
    objects.sort(key=lambda o: (o[0] + o[2], o[1] + o[3]))
    phrases = [o[4] for o in objects]
    record = dict(
        width=w, height=h,
        caption=make_caption(phrases, bg_name) if phrases else f'{_article(bg_name)} {bg_name} background',
        regions=[dict(bbox=list(o[:4]), phrase=o[4], score=1.0) for o in objects])
    return img, record


def generate_shifted_regions(out_dir: str, shift: str, num: int = 500, seed: int = 0) -> dict:
    """Write ``num`` images of ``shift`` under ``out_dir`` (layout in the module docstring).

    Returns:
        dict: ``ann_file``, ``num_images``, ``num_regions``, ``shift``.
    """
    if shift not in SHIFTS:
        raise ValueError(f'shift must be one of {sorted(SHIFTS)}, got {shift!r}')
    img_dir = osp.join('images', 'val')
    os.makedirs(osp.join(out_dir, img_dir), exist_ok=True)
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    ann_file = osp.join(out_dir, 'annotations', 'val.jsonl')
    shift_id = sorted(SHIFTS).index(shift) + 100  # never a training split id
    num_regions = 0
    with open(ann_file, 'w', encoding='utf-8') as f:
        for i in range(num):
            img, record = render_shifted_sample(np.random.default_rng([seed, shift_id, i]), shift)
            image = f'{img_dir}/{i:06d}.jpg'
            img.save(osp.join(out_dir, image), quality=SHIFTS[shift]['jpeg_quality'])
            f.write(json.dumps(dict(image=image, **record)) + '\n')
            num_regions += len(record['regions'])
    with open(osp.join(out_dir, 'classes.txt'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(all_phrases()) + '\n')
    return dict(ann_file=ann_file, num_images=num, num_regions=num_regions, shift=shift)
