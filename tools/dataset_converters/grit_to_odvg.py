# Copyright (c) cllip_mm contributors. All rights reserved.
"""GRIT-20M img2dataset tars -> ODVG, through mmdet's own GRIT converters.

mmdet 3.3.0 ships ``grit_processing.py`` (untar img2dataset shards into
``annotations/*.json`` + ``images/``) and ``grit2odvg.py`` (those annotations -> ODVG
grounding lines); as scripts they do not work as published:

- ``grit_processing.py`` hands the tars to ``Pool.imap`` and leaves the ``with Pool``
  block without consuming the iterator, so the pool is terminated and nothing is
  written (and ``--num-process`` is parsed as a string);
- ``grit2odvg.py`` converts only the first two annotation files (``annos_files[:2]``)
  and downloads ``bert-base-uncased`` from the Hugging Face hub at import time (only
  to drop captions of 240 tokens or more).

This script calls their functions unchanged (``tar_processing`` per tar, then
``process_one_file`` per annotation file, all of them) and lets ``--tokenizer`` name
the BERT tokenizer (a hub id or a local directory)::

    python tools/dataset_converters/grit_to_odvg.py data/grit_raw data/grit \\
        [--tokenizer bert-base-uncased]

writes ``data/grit/images/00000/KEY.jpg``, ``data/grit/annotations/00000.json`` and
``data/grit/grit20m_vg.json`` (ODVG grounding; train with ``data_root='data/grit/'``,
``ann_file='grit20m_vg.json'``), and prints a JSON summary. GRIT's tars can also be
streamed without conversion (``RegionTextShardStream``).
"""
import argparse
import importlib.util
import json
import logging
import os
import os.path as osp
import queue


def _mmdet_converter(name: str):
    import mmdet
    path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'dataset_converters',
                    f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'mmdet_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def convert(raw_dir: str, out_dir: str, tokenizer: str = 'bert-base-uncased') -> dict:
    import jsonlines
    from transformers import AutoTokenizer

    os.makedirs(out_dir, exist_ok=True)
    processing = _mmdet_converter('grit_processing')
    logger = logging.getLogger('grit_to_odvg')
    tars = sorted(f for f in os.listdir(raw_dir) if f.endswith('.tar'))
    for name in tars:
        processing.tar_processing(osp.join(raw_dir, name), out_dir, logger)

    # grit2odvg loads its tokenizer at import: point it at --tokenizer
    load = AutoTokenizer.from_pretrained
    AutoTokenizer.from_pretrained = lambda *args, **kwargs: load(tokenizer)
    try:
        grit2odvg = _mmdet_converter('grit2odvg')
    finally:
        AutoTokenizer.from_pretrained = load
    ann_dir = osp.join(out_dir, 'annotations')
    records = []
    for name in sorted(os.listdir(ann_dir)):
        if name.endswith('.json') and not name.endswith('vg.json'):
            results: queue.Queue = queue.Queue()
            grit2odvg.process_one_file(osp.join(ann_dir, name), results)
            records += results.get()
    out = osp.join(out_dir, 'grit20m_vg.json')
    with jsonlines.open(out, mode='w') as writer:
        writer.write_all(records)
    return dict(out=out, tars=len(tars), records=len(records))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('raw_dir', help='img2dataset output (*.tar)')
    parser.add_argument('out_dir')
    parser.add_argument('--tokenizer', default='bert-base-uncased',
                        help='BERT tokenizer for the 240-token caption filter')
    args = parser.parse_args(argv)
    summary = convert(args.raw_dir, args.out_dir, args.tokenizer)
    print(json.dumps(summary))
    return summary


if __name__ == '__main__':
    main()
