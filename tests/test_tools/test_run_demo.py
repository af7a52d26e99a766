"""tools/run_demo.py end to end on a small set: data, both trainings, table, JSON, PNG;
with a hand-built model (toy_query_model.py) whose every metric is known."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

# over ~30 s on 2 cores: left out of the fast subset (-m "not slow")
pytestmark = pytest.mark.slow

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS_TESTS = osp.dirname(osp.abspath(__file__))  # holds toy_query_model.py

#: The toy model's words: the synthetic set's colours and shapes (one axis each).
WORDS = ('black', 'blue', 'green', 'orange', 'purple', 'red', 'white', 'yellow',
         'circle', 'square', 'star', 'triangle')
#: Each model's region query after 0, 1, 2 training iterations (the test trains 2).
#: With the data of --data-seed 5 these give answers that tell everything apart (the
#: test's preconditions check it).
QUERIES = {
    'CLOC': [dict(green=2, square=1), dict(blue=2, triangle=1), dict(white=2, circle=1)],
    'CLIP': [dict(orange=2, star=1), dict(white=2, star=1), dict(black=2, triangle=1)],
}
#: The table's rows (label -> metric), written out here rather than read from run_demo.
TABLE_ROWS = {
    'region classification top-1 (GT boxes, zero-shot)': 'region_cls/top1',
    'region classification mean per-class acc': 'region_cls/mean_class_acc',
    'image->text R@1': 'retrieval/i2t_R@1',
    'text->image R@1': 'retrieval/t2i_R@1',
    'image-text mean R@1': 'retrieval/mean_R@1',
    'image-text mean R@5': 'retrieval/mean_R@5',
    'grounding acc (IoU>=0.5, text->box)': 'grounding/acc@0.5',
    'grounding acc of "whole image" baseline': 'grounding/whole_image_acc@0.5',
    'restyled: region top-1': 'shift/restyled/region_cls/top1',
    'restyled: region mean per-class acc': 'shift/restyled/region_cls/mean_class_acc',
    'restyled: grounding acc': 'shift/restyled/grounding/acc@0.5',
}


def toy_config(name, data_root, path):
    """The demo's CLOC config with the toy model of ``QUERIES[name]`` (no grounding head,
    so no grounding metric), written to ``path``."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py'))
    tokenizer = osp.join(data_root, 'tokenizer')  # run_demo writes it before training
    replace = dict(
        image_encoder=dict(type='ToyQueryEncoder', words=WORDS, queries=QUERIES[name]),
        text_encoder=dict(type='ToyWordTextEncoder', words=WORDS,
                          tokenizer_file=osp.join(tokenizer, 'tokenizer.json')),
        tokenizer=dict(type='HFTokenizer', path=tokenizer, context_length=40),
        prompter=dict(type='ToyQueryPrompter'), grounding_head=None, region_loss=None,
        grounding_loss=None, region_embed_mode='prompter')
    for key, value in replace.items():  # replace, not merge into, the tiny ones
        cfg.model[key] = value
    cfg.val_evaluator = cfg.test_evaluator = [dict(type='RegionClassificationMetric'),
                                              dict(type='ImageTextRetrievalMetric')]
    cfg.custom_imports = dict(imports=['toy_query_model'], allow_failed_imports=False)
    cfg.dump(path)
    return path


def known_metrics(ann_file, query):
    """The toy's metrics on ``ann_file``, by hand from the annotations.

    Regions: every box's embedding is ``query``, a class name's the sum of its two words'
    axes (equal norms, so the cosine orders classes as the integer ``sum of query[word]``
    does); the vocabulary is the file's distinct phrases. A region is right at k when
    fewer than k other classes score at least as high as its own (ties count against).
    Images lie on an axis of their own: every image-text similarity is 0, all ties, so
    every recall is 0 (R@5 too: the sets have over 5 images). No grounding head: no
    grounding metric (None).
    """
    with open(ann_file) as f:
        phrases = [r['phrase'] for line in f for r in json.loads(line)['regions']]
    vocabulary = sorted(set(phrases))
    for name in vocabulary:
        assert len(set(name.split())) == 2 and set(name.split()) <= set(WORDS), name
    score = {v: sum(query.get(word, 0) for word in v.split()) for v in vocabulary}
    rank = {p: sum(score[v] >= score[p] for v in vocabulary if v != p) for p in vocabulary}
    return {
        'region_cls/top1': sum(rank[p] == 0 for p in phrases) / len(phrases),
        'region_cls/top5': sum(rank[p] < 5 for p in phrases) / len(phrases),
        # every region of a class has the class's rank: its accuracy is 1 or 0
        'region_cls/mean_class_acc': sum(rank[v] == 0 for v in vocabulary) / len(vocabulary),
        'retrieval/i2t_R@1': 0.0, 'retrieval/t2i_R@1': 0.0, 'retrieval/mean_R@1': 0.0,
        'retrieval/mean_R@5': 0.0, 'grounding/acc@0.5': None,
        'grounding/whole_image_acc@0.5': None,
    }


def assert_equal(got, expected, what):
    if expected is None:
        assert got is None, (what, got)
    else:  # the metrics are float32 fractions
        assert got == pytest.approx(expected, abs=1e-6), (what, got, expected)


def test_run_demo_prints_cloc_and_clip_side_by_side(tmp_path):
    """A known answer: both models are the hand-built toy (toy_query_model.py), each with
    its own queries, so every metric of the table and of summary.json follows from the
    annotation files by hand (:func:`known_metrics`); the preconditions below make sure the
    answers tell the columns, the checkpoints, the metric keys and the sets apart."""
    data_root, work_dir = str(tmp_path / 'data'), str(tmp_path / 'work')
    configs = [f'{name}={toy_config(name, data_root, str(tmp_path / f"toy_{name}.py"))}'
               for name in ('CLOC', 'CLIP')]
    # checkpoint interval 1: iter_1.pth is there beside iter_2.pth, with another query
    fast = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'train_dataloader.batch_size=8',
            'val_dataloader.batch_size=16', 'default_hooks.checkpoint.interval=1']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        fast += [f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools/run_demo.py'), '--data-root', data_root, '--work-dir',
         work_dir, '--num-train', '32', '--num-val', '16', '--data-seed', '5', '--shifts', 'restyled',
         '--num-shift', '8', '--config', *configs, '--cfg-options', *fast],
        env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=os.pathsep.join(
            filter(None, [TOOLS_TESTS, os.environ.get('PYTHONPATH')]))),
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '2 models at a time, 1 thread(s) each' in proc.stdout

    # The known answer, from the annotation files run_demo wrote, by hand.
    sets = {'val': osp.join(data_root, 'annotations', 'val.jsonl'),
            'restyled': osp.join(data_root, 'shifts', 'restyled', 'annotations', 'val.jsonl')}
    known = {(name, s, k): known_metrics(ann_file, QUERIES[name][k])
             for name in QUERIES for s, ann_file in sets.items() for k in (1, 2)}
    expected = {name: {**known[name, 'val', 2],
                       **{f'shift/restyled/{key}': value
                          for key, value in known[name, 'restyled', 2].items()}}
                for name in QUERIES}
    # Preconditions: the answers differ between the models (columns), the sets, the
    # checkpoints (iter_1 holds queries[1]) and the metric keys, by more than the
    # table's 3 decimals.
    top1 = {key: value['region_cls/top1'] for key, value in known.items()}
    for s in sets:
        assert abs(top1['CLOC', s, 2] - top1['CLIP', s, 2]) > 2e-3, top1
        for name in QUERIES:
            assert abs(top1[name, s, 2] - top1[name, s, 1]) > 2e-3, top1
            got = known[name, s, 2]
            for other in ('region_cls/top5', 'region_cls/mean_class_acc'):
                assert abs(got['region_cls/top1'] - got[other]) > 2e-3, (name, s, got)
    for name in QUERIES:
        assert abs(top1[name, 'val', 2] - top1[name, 'restyled', 2]) > 2e-3, top1

    # summary.json: every number is the known one.
    with open(osp.join(work_dir, 'summary.json')) as f:
        summary = json.load(f)
    results = summary['results']
    assert list(results) == ['CLOC', 'CLIP']
    for name in QUERIES:
        assert set(results[name]) == {*TABLE_ROWS.values(), 'train_minutes'}
        for key in TABLE_ROWS.values():
            assert_equal(results[name][key], expected[name][key], (name, key))
        assert results[name]['train_minutes'] >= 0
    margins = {'region_top1_margin': 'region_cls/top1', 'mean_R@1_gap': 'retrieval/mean_R@1',
               'restyled_region_top1_margin': 'shift/restyled/region_cls/top1'}
    for margin, key in margins.items():
        assert summary[margin] == pytest.approx(expected['CLOC'][key] - expected['CLIP'][key],
                                                abs=1e-6), margin

    # The printed table: the same numbers under the right labels and columns.
    table = proc.stdout[proc.stdout.index('metric (val split'):]
    header, *rows = table.splitlines()
    assert header.split()[-2:] == ['CLOC', 'CLIP']
    cells = {}
    for row in rows[:len(TABLE_ROWS) + 1]:  # the label, then one cell per model
        label, *values = row.rsplit(maxsplit=2)
        cells[label] = values
    for label, key in TABLE_ROWS.items():
        for name, cell in zip(('CLOC', 'CLIP'), cells[label]):
            value = expected[name][key]
            if value is None:
                assert cell == 'nan', (label, name, cell)
            else:
                assert abs(float(cell) - value) <= 5e-4 + 1e-9, (label, name, cell, value)
    assert len(cells['training time (min)']) == 2

    # The final checkpoints are the ones trained 2 iterations (the query of step 2).
    import torch
    for name in QUERIES:
        ckpt = torch.load(osp.join(work_dir, name.lower(), 'iter_2.pth'), map_location='cpu',
                          weights_only=False)
        assert int(ckpt['state_dict']['image_encoder.step']) == 2

    with open(sets['restyled']) as f:
        assert len(f.readlines()) == 8
    assert osp.getsize(osp.join(work_dir, 'curves.png')) > 1000
    # The two models trained at once (one per core of the 2 the test allows), each logging to a file.
    for name in ('cloc', 'clip'):
        with open(osp.join(work_dir, f'{name}.log')) as f:
            log = f.read()
        assert 'Saving checkpoint at 2 iterations' in log and 'tools/test.py' in log
    assert osp.exists(osp.join(data_root, 'tokenizer', 'tokenizer.json'))


def test_run_demo_stops_the_other_model_when_one_fails(tmp_path):
    """CLOC's config is missing: the error names its log at once, and CLIP (1200 iterations,
    many minutes) is stopped rather than run to the end (else the timeout fails the test)."""
    data_root, work_dir = str(tmp_path / 'data'), str(tmp_path / 'work')
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools/run_demo.py'), '--data-root', data_root, '--work-dir',
         work_dir, '--num-train', '16', '--num-val', '8', '--shifts', 'restyled', '--num-shift', '4',
         '--config', f'CLOC={tmp_path / "missing.py"}', '--cfg-options',
         'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False'],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0
    assert f'its output is in {osp.join(work_dir, "cloc.log")}' in proc.stderr
    assert 'missing.py' in proc.stderr  # the log's tail, printed
    assert not osp.exists(osp.join(work_dir, 'clip', 'last_checkpoint'))
    assert not osp.exists(osp.join(work_dir, 'summary.json'))
