# Copyright (c) cllip_mm contributors. All rights reserved.
"""Shared pieces of the performance benchmarks (``benchmarks/*_step.py`` etc.).

- COCO-like captions: ``8 + Binomial(12, 0.2)`` words (mean 10.4, range 8-20; COCO's
  captions have a mean of about 10.5 words, most of them 8-14), drawn from a small
  English word list, ending with a period.
- Region phrases: 1-4 words (``1 + Binomial(3, 0.4)``, mean 2.2); ``distinct=True`` makes
  every phrase of a batch a different text (a counter word is appended when needed).
- The tokenizer is the word-level demo tokenizer built over those words
  (:func:`cllip_mm.models.tokenizers.build_word_level_tokenizer`): a caption of n words is
  n + 3 tokens (SOT, words, '.', EOT), close to CLIP's BPE on COCO captions (about 1.1
  tokens per word). The text tower keeps CLIP's ``vocab_size`` 49408 from the config.
- Models are the ``configs/_base_/models/cloc_vit-b16.py`` towers (or smaller ones for
  ``--arch tiny``); the CLIP baseline is the same config without prompter, grounding head
  and region losses.
- :func:`interleaved_times` times several callables round-robin in one process (the
  order alternates each round), so a slow phase of a shared machine hits all of them.
"""
import json
import os
import os.path as osp
import random
import statistics
import tempfile
import time
from typing import Callable, Dict, List, Optional

import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

from cllip_mm.registry import MODELS
from cllip_mm.structures import RegionTextDataSample
from cllip_mm.utils import register_all_modules

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
BASE_MODEL = osp.join(REPO, 'configs/_base_/models/cloc_vit-b16.py')
WORDS = ('a an the man woman child dog cat horse bus car train plate pizza table street '
         'field grass water boat bird sky tree building window kitchen room bed couch '
         'red blue green white black small large young old wooden standing sitting '
         'walking riding holding eating looking playing next to on in of with near '
         'top front side two three group people person bike road sign clock wall').split()
PHRASE_WORDS = ('red blue green white black small large wooden old young man woman dog '
                'cat car bus tree sign plate cup chair bench kite umbrella shirt hat bag '
                'window door wall table bottle laptop phone boat bird horse sheep').split()
CAPTION_LENGTHS = '8 + Binomial(12, 0.2) words (mean 10.4, range 8-20), then "."'
PHRASE_LENGTHS = '1 + Binomial(3, 0.4) words (mean 2.2)'


def caption(rng: random.Random) -> str:
    n = 8 + sum(rng.random() < 0.2 for _ in range(12))
    return ' '.join(rng.choice(WORDS) for _ in range(n)) + '.'


def phrase(rng: random.Random) -> str:
    n = 1 + sum(rng.random() < 0.4 for _ in range(3))
    return ' '.join(rng.choice(PHRASE_WORDS) for _ in range(n))


def build_tokenizer(out_dir: str) -> str:
    """The word-level tokenizer over :data:`WORDS` and :data:`PHRASE_WORDS` (plus the
    counter words of distinct phrases); returns its directory."""
    from cllip_mm.models.tokenizers import build_word_level_tokenizer
    counters = [f'n{i}' for i in range(4096)]
    build_word_level_tokenizer([' '.join(WORDS + PHRASE_WORDS + counters) + ' .'], out_dir)
    return out_dir


def model_cfg(tokenizer_dir: str, arch: str = 'b16', clip_only: bool = False,
              **text_encoder) -> dict:
    """The CLOC (or CLIP baseline) model config of ``arch`` ('b16': the ViT-B/16 config;
    'tiny': 2 blocks of width 64, for smoke runs)."""
    cfg = Config.fromfile(BASE_MODEL).model
    cfg.tokenizer.path = tokenizer_dir
    if arch == 'tiny':
        cfg.image_encoder.update(img_size=64, width=64, layers=2, heads=2, embed_dim=32)
        cfg.text_encoder.update(width=64, layers=2, heads=2, embed_dim=32)
        cfg.prompter.update(width=64, embed_dim=32, heads=2)
        cfg.grounding_head.update(width=64, embed_dim=32)
    elif arch != 'b16':
        raise ValueError(f"arch must be 'b16' or 'tiny', got {arch!r}")
    cfg.text_encoder.update(text_encoder)
    if clip_only:
        cfg.update(prompter=None, grounding_head=None, region_loss=None, grounding_loss=None,
                   region_embed_mode='crop')
    return cfg.to_dict()


def build_model(cfg: dict, seed: int = 0) -> torch.nn.Module:
    register_all_modules()
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.train()


def make_batch(batch_size: int, img_size: int, regions: int, seed: int = 0,
               distinct: bool = True, phrases_per_image: int = 0) -> dict:
    """A ``train_step`` batch: uint8 images [3, S, S] and data samples with a caption
    and ``regions`` boxes (random, at least 1/8 of the side) with phrases.

    ``phrases_per_image`` K > 0: each image draws K phrases and box i takes phrase
    i mod K, as VESL labels come (each noun phrase of the caption is one detector query
    that returns several boxes); 0: one phrase drawn per box."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    inputs, samples, seen = [], [], set()
    for _ in range(batch_size):
        inputs.append(torch.randint(0, 256, (3, img_size, img_size), dtype=torch.uint8,
                                    generator=gen))
        sample = RegionTextDataSample(metainfo=dict(
            img_shape=(img_size, img_size), ori_shape=(img_size, img_size),
            caption=caption(rng)))
        xy = torch.rand(regions, 2, generator=gen) * img_size * 0.8
        wh = (torch.rand(regions, 2, generator=gen) * 0.5 + 0.125) * img_size
        boxes = torch.cat([xy, (xy + wh).clamp(max=img_size)], dim=1)
        phrases = []
        for i in range(regions):
            if phrases_per_image and i >= phrases_per_image:
                phrases.append(phrases[i % phrases_per_image])
                continue
            text = phrase(rng)
            if distinct:
                base, k = text, 0
                while text in seen:
                    text, k = f'{base} n{k}', k + 1
                seen.add(text)
            phrases.append(text)
        sample.gt_regions = InstanceData(bboxes=boxes, phrases=phrases)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def make_optim_wrapper(model: torch.nn.Module, wrapper: str = 'OptimWrapper',
                       fused: bool = True):
    """AdamW in an MMEngine optim wrapper; ``fused=True`` as the shipped schedules
    (``configs/_base_/schedules/``) use it, ``False`` for torch's default foreach form."""
    from mmengine.optim import build_optim_wrapper
    return build_optim_wrapper(model, dict(
        type=wrapper, optimizer=dict(type='AdamW', lr=1e-5, weight_decay=0.1, fused=fused)))


def interleaved_times(fns: Dict[str, Callable[[], object]], repeats: int,
                      warmup: int = 1) -> Dict[str, List[float]]:
    """Seconds of each call of each ``fns`` value, timed round-robin (alternating order)."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for rep in range(repeats):
        for name in (names if rep % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def summary(times: Dict[str, List[float]]) -> Dict[str, dict]:
    return {name: dict(median_s=round(statistics.median(t), 4), min_s=round(min(t), 4),
                       runs=len(t)) for name, t in times.items()}


def ratio(times: Dict[str, List[float]], num: str, den: str) -> dict:
    """Ratio of medians, ratio of minima (the estimate that survives a shared machine:
    other processes only ever add time), and the spread of the per-round ratios."""
    per_round = sorted(a / b for a, b in zip(times[num], times[den]))
    return dict(median=round(statistics.median(times[num]) / statistics.median(times[den]), 3),
                min=round(min(times[num]) / min(times[den]), 3),
                per_round_min=round(per_round[0], 3), per_round_max=round(per_round[-1], 3))


def tmp_tokenizer() -> str:
    return build_tokenizer(tempfile.mkdtemp(prefix='bench_tok_'))


def env_info(threads: Optional[int] = None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    return dict(torch=torch.__version__, threads=torch.get_num_threads(),
                device='cpu', cpus=__import__('os').cpu_count())


def emit(result: dict, out: Optional[str] = None) -> None:
    """Print the benchmark's one JSON object and, with ``out``, also write it there."""
    print(json.dumps(result))
    if out:
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        with open(out, 'w') as f:
            json.dump(result, f, indent=1)
