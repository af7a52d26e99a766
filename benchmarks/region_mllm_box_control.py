# Copyright (c) cllip_mm contributors. All rights reserved.
"""Does a trained region MLLM read the box of a referring question? A control for issue #25.

The models of ``tools/mllm/train_eval_region_mllm.py`` (``WORK_DIR/<variant>/hf``) answer the
same referring questions twice: with the asked region's box (the tool's evaluation), and with
the box of *another* region of the same image whose phrase differs (the "moved" box). A model
that reads the box answers the moved question with the other region's phrase; a model that
ignores it gives the same answer to both.

Reported per variant (val split, the tool's referring questions, seed ``--seed``):

- ``acc``: answers equal to the asked region's phrase, true box (the tool's referring acc);
- ``moved_acc_new``: moved box, answers equal to the phrase of the region now boxed;
- ``moved_acc_old``: moved box, answers still equal to the asked region's phrase;
- ``same_answer``: fraction of questions answered identically with either box (1.0: the box
  is ignored).

    python benchmarks/region_mllm_box_control.py --work-dir work_dirs/region_mllm_s0 --seed 0

Prints and writes (``--out``) one JSON document.
"""
import argparse
import json
import os.path as osp
import time

import numpy as np

VARIANTS = ('CLIP', 'CLOC', 'CLOC_REGION')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/region_mllm_s0',
                        help='the work dir of train_eval_region_mllm.py (its <variant>/hf)')
    parser.add_argument('--data-root', default='data/cloc_demo')
    parser.add_argument('--seed', type=int, default=0,
                        help='the seed the models were evaluated with (questions: seed + 1000)')
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument('--max-images', type=int, default=0, help='val images (0: all)')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--out', default='', help='JSON output (default: WORK_DIR/box_control.json)')
    return parser.parse_args(argv)


def moved_questions(records, instructions, seed):
    """The referring questions whose image has a region with another phrase, each with the box
    of one such region (drawn with ``seed``): ``(question, moved question)`` pairs; the moved
    question's ``target`` is the phrase of the region it now boxes."""
    from cllip_mm.mllm.coords import text_box
    rng = np.random.default_rng([seed, 25])
    pairs = []
    for inst in instructions:
        if inst.task != 'referring':
            continue
        record = records[inst.image_index]
        others = [r for r, p in enumerate(record.phrases) if p != record.phrases[inst.region_index]]
        if not others:
            continue
        r = others[int(rng.integers(len(others)))]
        box = tuple(text_box(record.normalized_boxes()[r]))
        pairs.append((inst, inst._replace(boxes=(box, ), answer=record.phrases[r],
                                          target=record.phrases[r], region_index=r)))
    return pairs


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch

    from cllip_mm.mllm import InstructionBuilder, RegionMLLM, load_region_records
    from cllip_mm.mllm.answers import is_correct, parse_answer
    from cllip_mm.mllm.inference import generate_answers
    if args.threads:
        torch.set_num_threads(args.threads)
    records = load_region_records('annotations/val.jsonl', args.data_root)
    if args.max_images:
        records = records[:args.max_images]
    # the tool's evaluation questions (tools/mllm/train_eval_region_mllm.py)
    instructions = InstructionBuilder(dict(referring=1, grounding=1, relation=1),
                                      seed=args.seed + 1000).build(records)
    pairs = moved_questions(records, instructions, args.seed)
    out = dict(settings=vars(args), num_questions=len(pairs), variants={})
    for variant in args.variants:
        start = time.process_time()
        mllm = RegionMLLM.from_pretrained(osp.join(args.work_dir, variant, 'hf'))
        asked = [p[0] for p in pairs]
        moved = [p[1] for p in pairs]
        answers = generate_answers(mllm.model, mllm.tokenizer, records, asked + moved,
                                   batch_size=args.batch_size)
        true_ans, moved_ans = answers[:len(pairs)], answers[len(pairs):]

        def rate(insts, texts):
            return round(float(np.mean([is_correct(i, parse_answer('referring', t))
                                        for i, t in zip(insts, texts)])), 4)

        out['variants'][variant] = dict(
            acc=rate(asked, true_ans),
            moved_acc_new=rate(moved, moved_ans),
            moved_acc_old=rate(asked, moved_ans),
            same_answer=round(float(np.mean([a == b for a, b in zip(true_ans, moved_ans)])), 4),
            cpu_s=round(time.process_time() - start, 1))
        print(f'[box_control] {variant}: {out["variants"][variant]}', flush=True)
    path = args.out or osp.join(args.work_dir, 'box_control.json')
    with open(path, 'w') as f:
        json.dump(out, f, indent=2)
    print(json.dumps(out['variants'], indent=2))
    return out


if __name__ == '__main__':
    main()
