# Copyright (c) cllip_mm contributors. All rights reserved.
"""Images left out of an evaluation (bad images with on_bad_record='skip') are counted
in every metric's report and change nothing else, in 1 and 2 processes."""
import json
import os.path as osp

import pytest
import torch
from dist_utils import run_in_processes
from mmengine.dataset import DefaultSampler
from mmengine.evaluator import Evaluator
from test_distributed_metrics import make_dataset

from cllip_mm.evaluation import (
    GroundingMetric,
    ImageTextRetrievalMetric,
    RegionClassificationMetric,
    RegionRetrievalMetric,
)

LEFT_OUT = (1, 4)


def marked_dataset():
    """make_dataset() with samples LEFT_OUT marked as LoadImageFromFileChecked marks
    a bad test image, and given perfect predictions: counting them would raise every
    metric."""
    samples = make_dataset()
    for i in LEFT_OUT:
        sample = samples[i]
        sample.set_metainfo(dict(skip_reason='unreadable image'))
        sample.pred_regions.ground_bboxes = sample.gt_regions.bboxes.clone()
        labels = sample.gt_regions.labels.clamp(min=0)
        sample.pred_regions.scores[torch.arange(len(labels)), labels] = 5.
        sample.text_embed = sample.image_embed.clone()
    return samples


def evaluate(samples, dataset_meta=None, batch_size=2):
    evaluator = Evaluator([RegionClassificationMetric(topk=(1, 2)),
                           ImageTextRetrievalMetric(topk=(1, 2)), GroundingMetric()])
    if dataset_meta is not None:
        evaluator.dataset_meta = dataset_meta
    for start in range(0, len(samples), batch_size):
        evaluator.process(samples[start:start + batch_size])
    return evaluator.evaluate(len(samples))


def split(metrics):
    counts = {k: v for k, v in metrics.items() if k.endswith('num_images_left_out')}
    return {k: v for k, v in metrics.items() if k not in counts}, set(counts.values())


def test_left_out_samples_are_counted_and_ignored():
    samples = marked_dataset()
    kept = [s for i, s in enumerate(samples) if i not in LEFT_OUT]
    with_marked, counts = split(evaluate(samples))
    clean, clean_counts = split(evaluate(kept))
    assert counts == {len(LEFT_OUT)} and clean_counts == {0}
    assert with_marked == clean
    # the marks matter: unmarked, the perfect predictions raise the metrics
    unmarked = make_dataset()
    assert split(evaluate(unmarked))[0] != clean


def test_records_dropped_when_reading_are_counted_too():
    metrics = evaluate(marked_dataset(), dataset_meta=dict(num_skipped_records=3))
    assert metrics['region_cls/num_images_left_out'] == len(LEFT_OUT) + 3
    assert metrics['retrieval/num_images_left_out'] == len(LEFT_OUT) + 3


def test_everything_left_out():
    samples = marked_dataset()
    for s in samples:
        s.set_metainfo(dict(skip_reason='size mismatch'))
    metrics = evaluate(samples)
    assert metrics['region_cls/top1'] == 0 and metrics['grounding/num_phrases'] == 0
    assert metrics['retrieval/num_images_left_out'] == len(samples)


def region_retrieval_samples():
    """make_dataset() with region and phrase embeddings; the LEFT_OUT samples are marked
    and given perfect ones (each region equal to its phrase)."""
    gen = torch.Generator().manual_seed(1)
    samples = make_dataset()
    for i, sample in enumerate(samples):
        num = len(sample.gt_regions.labels)
        sample.gt_regions.phrases = [f'phrase {(i + j) % 4}' for j in range(num)]
        sample.pred_regions.embeds = torch.randn(num, 8, generator=gen)
        sample.pred_regions.phrase_embeds = torch.randn(num, 8, generator=gen)
        if i in LEFT_OUT:
            sample.set_metainfo(dict(skip_reason='unreadable image'))
            sample.pred_regions.phrase_embeds = sample.pred_regions.embeds.clone()
    return samples


def test_region_retrieval_leaves_them_out_too():
    def run(samples):
        evaluator = Evaluator([RegionRetrievalMetric(topk=(1, 2))])
        evaluator.process(samples)
        return evaluator.evaluate(len(samples))

    samples = region_retrieval_samples()
    with_marked, counts = split(run(samples))
    clean, clean_counts = split(run([s for i, s in enumerate(samples) if i not in LEFT_OUT]))
    assert counts == {len(LEFT_OUT)} and clean_counts == {0}
    assert with_marked == clean
    for s in samples:  # the marks matter: unmarked, the perfect regions change the metrics
        s.set_metainfo(dict(skip_reason=None))
        del s.skip_reason
    assert split(run(samples))[0] != clean


def _worker(rank, world_size, out_file):
    dataset = marked_dataset()
    shard = [dataset[i] for i in DefaultSampler(dataset, shuffle=False)]
    evaluator = Evaluator([RegionClassificationMetric(topk=(1, 2)),
                           ImageTextRetrievalMetric(topk=(1, 2)), GroundingMetric()])
    evaluator.process(shard)
    metrics = evaluator.evaluate(len(dataset))
    if rank == 0:
        with open(out_file, 'w') as f:
            json.dump(metrics, f)


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_two_processes_equal_one(tmp_path):
    expected = evaluate(marked_dataset())
    out_file = osp.join(tmp_path, 'metrics.json')
    run_in_processes(_worker, args=(out_file, ), tmp_dir=tmp_path)
    with open(out_file) as f:
        assert json.load(f) == expected
