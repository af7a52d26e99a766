# Copyright (c) cllip_mm contributors. All rights reserved.
"""The VESL stages chained on a batch of input images, with per-image fault
isolation, per-stage timing and counts."""
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from mmengine.structures import InstanceData

from cllip_mm.registry import VESL_STAGES
from .detectors import empty_regions
from .phrase_extractors import Phrase
from .sources import InputItem, read_image

#: Stage names, in order, as they appear in the timing report.
STAGES = ('decode', 'caption', 'phrases', 'detect', 'filter')


class ImageResult(NamedTuple):
    """The outcome of one input image. ``error`` is ``(stage, message)`` when the
    image failed (undecodable, or a model error at that stage), else None.
    ``regions`` (filtered, best score first) has ``bboxes`` [N, 4] xyxy pixels of
    the decoded image, ``scores`` [N] and ``labels`` [N] indexing ``phrases``."""
    item: InputItem
    image: Optional[object]
    caption: str
    phrases: List[Phrase]
    regions: InstanceData
    error: Optional[Tuple[str, str]]


class VESLPipeline:
    """Captioner -> phrase extractor -> open-vocabulary detector -> filters.

    Args:
        captioner, phrase_extractor, detector (dict): Configs of
            :data:`~cllip_mm.registry.VESL_STAGES` components (built with the
            ``device`` / ``dtype`` given here as default arguments).
        filters (list[dict]): Region filter configs, applied in order.
        device (str): Device of the models.
        dtype (str): Weights / inputs dtype of the models.

    A batch is run through each stage in one call; if a stage raises, it is rerun
    image by image so that only the failing image is dropped (counted under
    ``errors/<stage>``), never the batch or the run.
    """

    def __init__(self, captioner: dict, phrase_extractor: dict, detector: dict,
                 filters: Sequence[dict] = (), device: str = 'cpu',
                 dtype: str = 'float32') -> None:
        default_args = dict(device=device, dtype=dtype)
        self.captioner = VESL_STAGES.build(captioner, default_args=default_args)
        self.phrase_extractor = VESL_STAGES.build(phrase_extractor, default_args=default_args)
        self.detector = VESL_STAGES.build(detector, default_args=default_args)
        self.filters = [VESL_STAGES.build(f) for f in filters]
        names = [f.name for f in self.filters]
        if len(set(names)) != len(names):
            raise ValueError(f'filter names must be unique (set `name=`), got {names}')
        self.cuda = str(device).startswith('cuda')

    @contextmanager
    def _timed(self, times: Dict[str, float], stage: str):
        start = time.perf_counter()
        yield
        if self.cuda:
            torch.cuda.synchronize()
        times[stage] += time.perf_counter() - start

    @staticmethod
    def _robust(stage: str, fn: Callable, alive: List[int], args: Sequence[Sequence],
                errors: Dict[int, Tuple[str, str]]) -> Dict[int, object]:
        """``fn`` on the ``alive`` images in one call, else one by one."""

        def call(idx):
            out = fn(*[[a[i] for i in idx] for a in args])
            if len(out) != len(idx):
                raise RuntimeError(f'{stage}: {len(out)} outputs for {len(idx)} inputs')
            return dict(zip(idx, out))

        if not alive:
            return {}
        try:
            return call(alive)
        except Exception as batch_error:  # isolate the culprit image(s)
            if len(alive) == 1:
                errors[alive[0]] = (stage, f'{type(batch_error).__name__}: {batch_error}')
                return {}
            results = {}
            for i in alive:
                try:
                    results.update(call([i]))
                except Exception as e:
                    errors[i] = (stage, f'{type(e).__name__}: {e}')
            return results

    def __call__(self, items: Sequence[InputItem], stats: Optional[Counter] = None,
                 times: Optional[Dict[str, float]] = None) -> List[ImageResult]:
        """Run the stages on a batch; add counts to ``stats`` and seconds per stage
        to ``times``."""
        stats = Counter() if stats is None else stats
        times = defaultdict(float) if times is None else times
        n = len(items)
        errors: Dict[int, Tuple[str, str]] = {}
        images: List[Optional[object]] = [None] * n
        stats['images_in'] += n

        with self._timed(times, 'decode'):
            for i, item in enumerate(items):
                if item.data is None:
                    errors[i] = ('decode', item.meta.get('error', 'no image data'))
                    continue
                try:
                    images[i] = read_image(item.data)
                except Exception as e:
                    errors[i] = ('decode', f'{type(e).__name__}: {e}')
        metas = [item.meta for item in items]

        with self._timed(times, 'caption'):
            alive = [i for i in range(n) if i not in errors]
            captions = self._robust('caption', self.captioner, alive, (images, metas), errors)

        with self._timed(times, 'phrases'):
            alive = [i for i in range(n) if i not in errors]
            caption_list = [captions.get(i, '') for i in range(n)]
            extracted = self._robust('phrases', self.phrase_extractor, alive, (caption_list, ),
                                     errors)

        with self._timed(times, 'detect'):
            alive = [i for i in range(n) if i not in errors]
            queries = [[p.text for p in extracted[i].phrases] if i in extracted else []
                       for i in range(n)]
            detections = self._robust('detect', self.detector, alive, (images, queries), errors)

        results = []
        with self._timed(times, 'filter'):
            for i, item in enumerate(items):
                if i in errors:
                    stage, _ = errors[i]
                    stats['undecodable' if stage == 'decode' else f'errors/{stage}'] += 1
                    results.append(ImageResult(item, None, '', [], empty_regions(), errors[i]))
                    continue
                phrases = extracted[i].phrases
                stats['images_out'] += 1
                stats['captions_empty'] += int(not captions[i])
                stats['phrases'] += len(phrases)
                stats['images_without_phrases'] += int(not phrases)
                for reason, count in extracted[i].dropped.items():
                    stats[f'phrases_dropped/{reason}'] += count
                regions = detections[i]
                stats['regions_detected'] += len(regions)
                for f in self.filters:
                    before = len(regions)
                    regions = f(regions, images[i].size)
                    stats[f'regions_dropped/{f.name}'] += before - len(regions)
                # Boxes must stay valid after rounding to 0.01 px in the records.
                b = regions.bboxes
                valid = (b[:, 2] - b[:, 0] >= 0.02) & (b[:, 3] - b[:, 1] >= 0.02)
                stats['regions_dropped/degenerate'] += int((~valid).sum())
                regions = regions[valid]
                stats['regions_kept'] += len(regions)
                stats['images_with_regions'] += int(len(regions) > 0)
                results.append(ImageResult(item, images[i], captions[i], phrases, regions, None))
        return results
