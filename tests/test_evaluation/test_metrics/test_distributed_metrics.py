# Copyright (c) cllip_mm contributors. All rights reserved.
"""The metrics in a 2-process (gloo, CPU) evaluation equal a 1-process one."""
import json
import os.path as osp

import pytest
import torch
from dist_utils import run_in_processes
from mmengine.dataset import DefaultSampler
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData

from cllip_mm.evaluation import (
    GroundingMetric,
    ImageTextRetrievalMetric,
    RegionClassificationMetric,
)
from cllip_mm.structures import RegionTextDataSample

NUM_SAMPLES = 7  # odd: the sampler pads rank 1 with a copy of sample 0


def make_dataset():
    """Samples carrying the fields of all three metrics; sample 0 is easy, so that
    counting its padded copy would change every metric."""
    gen = torch.Generator().manual_seed(0)
    samples = []
    for i in range(NUM_SAMPLES):
        num_regions = 0 if i == 3 else 1 + i % 3
        sample = RegionTextDataSample(metainfo=dict(
            img_path=f'{i}.jpg', img_shape=(60, 80), caption=f'caption {i % 5}'))
        labels = torch.randint(-1, 6, (num_regions, ), generator=gen)
        xy = torch.rand(num_regions, 2, generator=gen) * 30
        gt = torch.cat([xy, xy + 10 + torch.rand(num_regions, 2, generator=gen) * 30], 1)
        pred = gt + torch.randn(num_regions, 4, generator=gen) * 6
        scores = torch.rand(num_regions, 6, generator=gen)
        image = torch.randn(8, generator=gen)
        text = torch.randn(8, generator=gen)
        if i == 0:
            scores[torch.arange(num_regions), labels.clamp(min=0)] = 2.
            pred, text = gt.clone(), image.clone()
        sample.gt_regions = InstanceData(labels=labels, bboxes=gt)
        sample.pred_regions = InstanceData(scores=scores, ground_bboxes=pred)
        sample.image_embed = image
        sample.text_embed = text
        samples.append(sample)
    return samples


def make_evaluator():
    return Evaluator([
        RegionClassificationMetric(topk=(1, 2)),
        ImageTextRetrievalMetric(topk=(1, 2)),
        GroundingMetric(),
        GroundingMetric(collect_device='gpu', prefix='grounding_gpu'),
    ])


def evaluate(samples, batch_size=2):
    evaluator = make_evaluator()
    for start in range(0, len(samples), batch_size):
        evaluator.process(samples[start:start + batch_size])
    return evaluator.evaluate(NUM_SAMPLES)


def _worker(rank, world_size, out_file):
    dataset = make_dataset()
    shard = [dataset[i] for i in DefaultSampler(dataset, shuffle=False)]
    metrics = evaluate(shard)  # broadcast to every rank by the Evaluator
    if rank == 0:
        with open(out_file, 'w') as f:
            json.dump(metrics, f)


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_two_processes_equal_one(tmp_path):
    expected = evaluate(make_dataset())
    out_file = osp.join(tmp_path, 'metrics.json')
    run_in_processes(_worker, args=(out_file, ), tmp_dir=tmp_path)
    with open(out_file) as f:
        got = json.load(f)
    assert got == expected
    # the padded copy of sample 0 would raise these; make sure they are not trivial
    assert 0 < expected['region_cls/top1'] < 1
    assert 0 < expected['grounding/acc@0.5'] < 1
    assert 0 < expected['retrieval/i2t_R@1'] < 1
    assert expected['grounding/acc@0.5'] == expected['grounding_gpu/acc@0.5']
