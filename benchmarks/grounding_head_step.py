# Copyright (c) cllip_mm contributors. All rights reserved.
"""The demo's training step with each grounding head, timed side by side.

Times ``model.train_step`` (data preprocessor, forward, backward, AdamW step) of the CPU demo
model (``configs/_base_/models/cloc_vit-tiny-p8.py``, batch 64 at 96 px, 4 boxes per image
as the demo's data has) with

- ``mlp``: ``GroundingHead(box_mode='mlp')``, the spec's head;
- ``token``: ``box_mode='token'`` (token cross-entropy, boxes read per token);
- ``token_refine``: ``box_mode='token', refine=True``, the demo's shipped head.

The three models share their towers, Prompter and losses (one copy of those weights); steps
run round-robin in one process (:func:`perf_common.interleaved_times`); ratios are of the
medians (and minima) against ``mlp``.

    python benchmarks/grounding_head_step.py [--batch 64] [--regions 4] [--repeats 6] \\
        [--threads 1] [--out FILE]

Prints one JSON object.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import perf_common as pc  # noqa: E402

DEMO_MODEL = osp.join(pc.REPO, 'configs/_base_/models/cloc_vit-tiny-p8.py')
HEADS = dict(mlp=dict(box_mode='mlp', rescore_topk=1, refine=False),
             token=dict(box_mode='token', rescore_topk=1, refine=False),
             token_refine=dict(box_mode='token', rescore_topk=5, refine=True))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--regions', type=int, default=4)
    parser.add_argument('--repeats', type=int, default=6)
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--out', help='also write the JSON object to this file')
    return parser.parse_args()


def main():
    args = parse_args()
    env = pc.env_info(args.threads)
    tok = pc.tmp_tokenizer()
    models = {}
    for name, head in HEADS.items():
        cfg = Config.fromfile(DEMO_MODEL).model
        cfg.tokenizer.path = tok
        cfg.grounding_head.update(head)
        models[name] = pc.build_model(cfg.to_dict())
    shared = models['mlp']
    for model in models.values():
        for part in ('image_encoder', 'text_encoder', 'prompter', 'clip_loss', 'region_loss'):
            setattr(model, part, getattr(shared, part))
    wrappers = {name: pc.make_optim_wrapper(m) for name, m in models.items()}
    img = Config.fromfile(DEMO_MODEL).model.image_encoder.img_size
    batch = pc.make_batch(args.batch, img, args.regions, seed=1, distinct=False)
    times = pc.interleaved_times(
        {name: (lambda n=name: models[n].train_step(batch, wrappers[n])) for name in models},
        args.repeats)
    pc.emit(dict(benchmark='grounding_head_step', batch=args.batch, img=img,
                 regions=args.regions, **env, steps=pc.summary(times),
                 **{f'{name}/mlp': pc.ratio(times, name, 'mlp') for name in HEADS if name != 'mlp'}),
            args.out)


if __name__ == '__main__':
    main()
