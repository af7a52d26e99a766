"""The shifted evaluation sets: layout, determinism, vocabulary, and how they differ."""
import json

import numpy as np
import pytest
from PIL import Image

from cllip_mm.datasets.synthetic import all_phrases, render_sample
from cllip_mm.datasets.synthetic_shift import (
    SHIFTS,
    generate_shifted_regions,
    render_shifted_sample,
)


def _records(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize('shift', sorted(SHIFTS))
def test_layout_vocabulary_and_boxes(tmp_path, shift):
    summary = generate_shifted_regions(str(tmp_path), shift, num=6, seed=1)
    records = _records(summary['ann_file'])
    assert len(records) == 6 and summary['num_regions'] == sum(len(r['regions']) for r in records)
    assert (tmp_path / 'classes.txt').read_text().split('\n')[:-1] == all_phrases()
    for i, r in enumerate(records):
        assert r['image'] == f'images/val/{i:06d}.jpg'
        with Image.open(tmp_path / r['image']) as img:
            assert img.size == (r['width'], r['height'])
        assert r['caption'].endswith(' background')
        lo, hi = SHIFTS[shift]['objects_range']
        assert 1 <= len(r['regions']) <= hi
        for region in r['regions']:
            x1, y1, x2, y2 = region['bbox']
            assert 0 <= x1 < x2 <= r['width'] and 0 <= y1 < y2 <= r['height']
            assert region['phrase'] in all_phrases() and region['phrase'] in r['caption']


def test_deterministic(tmp_path):
    a = generate_shifted_regions(str(tmp_path / 'a'), 'restyled', num=3, seed=2)
    b = generate_shifted_regions(str(tmp_path / 'b'), 'restyled', num=3, seed=2)
    assert _records(a['ann_file']) == _records(b['ann_file'])


def test_small_crowded_is_smaller_and_more_crowded_than_training():
    def stats(render):
        sides, counts = [], []
        for i in range(40):
            _, r = render(np.random.default_rng([9, i]))
            counts.append(len(r['regions']))
            sides += [max(b[2] - b[0], b[3] - b[1]) / min(r['width'], r['height'])
                      for b in (g['bbox'] for g in r['regions'])]
        return np.median(sides), np.mean(counts)
    train_side, train_count = stats(render_sample)
    shift_side, shift_count = stats(lambda rng: render_shifted_sample(rng, 'small_crowded'))
    assert shift_side < 0.75 * train_side and shift_count > train_count + 1.5


def test_unknown_shift(tmp_path):
    with pytest.raises(ValueError, match='shift must be one of'):
        generate_shifted_regions(str(tmp_path), 'nope')
