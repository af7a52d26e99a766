# Copyright (c) cllip_mm contributors. All rights reserved.
"""tools/benchmark.py end to end: each task on a fixture in its public layout, scored by
a hand-built model whose answers are known (toy_colour_model), plus the demo export's
agreement with tools/test.py and a 2-process run."""
import importlib.util
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch
import toy_colour_model  # noqa: F401  (registers the toy modules)
from mmengine.runner import Runner
from toy_colour_model import draw, toy_cfg, write_tokenizer

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS_DIR = osp.dirname(osp.abspath(toy_colour_model.__file__))


def load_tool():
    spec = importlib.util.spec_from_file_location('benchmark_tool',
                                                  osp.join(REPO, 'tools', 'benchmark.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


benchmark_tool = load_tool()


def write_json(path, obj):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f)


# ----------------------------------------------------------------------------- fixtures
def write_coco(root):
    """COCO val2017 layout. Regions: img 139 red (label red: ties with crimson -> wrong)
    and green (right); img 285 blue (right), a crowd box and a box under 1 px (left
    out); img 632 a green box labelled blue (wrong) and a yellow one labelled green
    (ties red / green / crimson -> wrong); img 724 no box (dropped). Classes crimson
    and violet have no region (not in the mean)."""
    img_dir = osp.join(root, 'coco', 'val2017')
    os.makedirs(img_dir)
    draw(osp.join(img_dir, '000000000139.jpg'), [('red', 0, 0, 32, 32), ('green', 32, 32, 64, 64)])
    draw(osp.join(img_dir, '000000000285.jpg'), [('blue', 16, 0, 48, 32), ('red', 0, 32, 32, 64)])
    draw(osp.join(img_dir, '000000000632.jpg'), [('green', 0, 0, 32, 32), ('yellow', 32, 32, 64, 64)])
    draw(osp.join(img_dir, '000000000724.jpg'), [])
    images = [dict(id=i, file_name=f'{i:012d}.jpg', width=64, height=64, license=1)
              for i in (139, 285, 632, 724)]
    anns = [(139, 1, [0, 0, 32, 32], 0), (139, 2, [32, 32, 32, 32], 0),
            (285, 3, [16, 0, 32, 32], 0), (285, 1, [0, 32, 32, 32], 1),
            (285, 1, [50, 50, 0.5, 4], 0),
            (632, 3, [0, 0, 32, 32], 0), (632, 2, [32, 32, 32, 32], 0)]
    annotations = [dict(id=k + 1, image_id=img, category_id=cat, bbox=box, area=box[2] * box[3],
                        iscrowd=crowd, segmentation=[])
                   for k, (img, cat, box, crowd) in enumerate(anns)]
    categories = [dict(id=i, name=n, supercategory='colour')
                  for i, n in ((1, 'red'), (2, 'green'), (3, 'blue'), (5, 'crimson'), (7, 'violet'))]
    write_json(osp.join(root, 'coco', 'annotations', 'instances_val2017.json'),
               dict(info={}, licenses=[], images=images, annotations=annotations,
                    categories=categories))


COCO_EXPECTED = {'region_cls/top1': 2 / 5, 'region_cls/mean_class_acc': 1 / 3,
                 'region_cls/num_regions': 5, 'region_cls/num_ignored': 0}


def write_lvis(root):
    """LVIS v1 layout (images by coco_url under val2017/): a red box labelled
    'crimson_(color)' (ties with 'red' -> wrong), a green one labelled 'dark_green'
    ('dark' is a zero word -> right)."""
    img_dir = osp.join(root, 'lvis_v1', 'val2017')
    os.makedirs(img_dir)
    draw(osp.join(img_dir, '000000000139.jpg'), [('red', 0, 0, 32, 32), ('green', 32, 32, 64, 64)])
    images = [dict(id=139, coco_url='http://images.cocodataset.org/val2017/000000000139.jpg',
                   width=64, height=64, not_exhaustive_category_ids=[], neg_category_ids=[])]
    annotations = [dict(id=1, image_id=139, category_id=3, bbox=[0, 0, 32, 32], area=1024),
                   dict(id=2, image_id=139, category_id=2, bbox=[32, 32, 32, 32], area=1024)]
    categories = [dict(id=1, name='red', synonyms=['red'], frequency='f'),
                  dict(id=2, name='dark_green', synonyms=['dark_green'], frequency='c'),
                  dict(id=3, name='crimson_(color)', synonyms=['crimson'], frequency='r')]
    write_json(osp.join(root, 'lvis_v1', 'annotations', 'lvis_v1_val.json'),
               dict(images=images, annotations=annotations, categories=categories))


def write_grit(root):
    """GRIT as ODVG grounding lines. Regions R1 red "red", R2 green "green", R3 blue
    "blue", R4 red "red", R5 red "crimson" (as a list of boxes). "red" matches R1 and
    R4; "crimson" ties with "red" -> R1, R4, R5 and T1, T4, T5 miss at 1."""
    img_dir = osp.join(root, 'grit', 'images')
    os.makedirs(img_dir)
    lines = []
    for name, regions in [('000000001.jpg', [('red', [0, 0, 32, 32]), ('green', [32, 32, 64, 64])]),
                          ('000000002.jpg', [('blue', [0, 0, 32, 32]), ('red', [32, 0, 64, 32])]),
                          ('000000003.jpg', [('crimson', [[16, 16, 48, 48]])])]:
        draw(osp.join(img_dir, name), [
            ('red' if p == 'crimson' else p, *(b[0] if isinstance(b[0], list) else b))
            for p, b in regions])
        caption = ' and '.join(p for p, _ in regions)
        lines.append(dict(filename=name, height=64, width=64, grounding=dict(
            caption=caption, regions=[dict(bbox=b, phrase=p, tokens_positive=[[0, len(p)]])
                                      for p, b in regions])))
    with open(osp.join(root, 'grit', 'grit_odvg.jsonl'), 'w') as f:
        f.writelines(json.dumps(line) + '\n' for line in lines)


GRIT_EXPECTED = {f'region_retrieval/{d}_R@{k}': v for d in ('r2t', 't2r')
                 for k, v in ((1, 0.4), (5, 1.0), (10, 1.0))}
GRIT_EXPECTED.update({'region_retrieval/num_regions': 5, 'region_retrieval/num_phrases': 5})


def write_imagenet(root):
    """ImageNet val folders (sorted wnids = class order red, green, crimson): a red
    image (ties with crimson -> wrong), two green ones (right), a blue one labelled
    crimson (all scores 0 -> wrong)."""
    val = osp.join(root, 'imagenet', 'val')
    for wnid, name, boxes in [('n01440764', 'ILSVRC2012_val_00000293.JPEG', [('red', 0, 0, 64, 64)]),
                              ('n01443537', 'ILSVRC2012_val_00000236.JPEG', [('green', 0, 0, 64, 64)]),
                              ('n01443537', 'ILSVRC2012_val_00000262.JPEG', [('green', 0, 0, 64, 32)]),
                              ('n01484850', 'ILSVRC2012_val_00002338.JPEG', [('blue', 0, 0, 64, 64)])]:
        os.makedirs(osp.join(val, wnid), exist_ok=True)
        draw(osp.join(val, wnid, name), boxes)


def write_karpathy(root):
    """Karpathy's dataset_coco.json: a red image ("red", "crimson", "green"), a green
    one ("green", "blue"), a black one ("blue") and a train image (left out)."""
    img_dir = osp.join(root, 'coco', 'val2014')
    os.makedirs(img_dir)
    entries = []
    for cocoid, colour, split, sentences in [(391895, 'red', 'test', ['red', 'crimson', 'green']),
                                             (522418, 'green', 'test', ['green', 'blue']),
                                             (184613, 'black', 'test', ['blue']),
                                             (318219, 'red', 'train', ['red'])]:
        name = f'COCO_val2014_{cocoid:012d}.jpg'
        if split == 'test':
            draw(osp.join(img_dir, name), [(colour, 0, 0, 64, 64)])
        entries.append(dict(filepath='val2014', filename=name, split=split, cocoid=cocoid,
                            imgid=len(entries), sentences=[
                                dict(raw=s + ' ', tokens=[s]) for s in sentences]))
    write_json(osp.join(root, 'coco', 'annotations', 'dataset_coco.json'),
               dict(images=entries, dataset='coco'))


KARPATHY_EXPECTED = {'retrieval/i2t_R@1': 2 / 3, 'retrieval/i2t_R@5': 1.0,
                     'retrieval/t2i_R@1': 4 / 6, 'retrieval/t2i_R@5': 1.0,
                     'retrieval/num_images': 3, 'retrieval/num_texts': 6}


@pytest.fixture(scope='module')
def toy_data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('benchmark_data'))
    for write in (write_coco, write_lvis, write_grit, write_imagenet, write_karpathy):
        write(root)
    tokenizer = write_tokenizer(osp.join(root, 'tokenizer'))
    return root, tokenizer


def toy_checkpoint(cfg, path):
    from cllip_mm.registry import MODELS
    from cllip_mm.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict(), meta=dict()), path)
    return path


@pytest.fixture
def toy_model(toy_data, make_tiny_cloc_cfg, tmp_path):
    def make(mode='prompter'):
        cfg = toy_cfg(make_tiny_cloc_cfg(), toy_data[1], mode)
        config = str(tmp_path / f'toy_{mode}.py')
        cfg.dump(config)
        return config, toy_checkpoint(cfg, str(tmp_path / f'toy_{mode}.pth'))
    return make


def run(config, checkpoint, tasks, data_root, *extra, work_dir):
    return benchmark_tool.main([config, checkpoint, '--tasks', *tasks, '--data-root', data_root,
                                '--work-dir', str(work_dir), '--num-workers', '0',
                                '--batch-size', '2', *extra])


def assert_metrics(got, expected):
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), (key, got)


# ------------------------------------------------------------------------------- tests
@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_each_task_matches_the_hand_computed_answer(toy_data, toy_model, tmp_path):
    root, _ = toy_data
    config, ckpt = toy_model('prompter')
    results = run(config, ckpt, ['coco_region_cls', 'lvis_region_cls', 'grit_region_retrieval',
                                 'coco_retrieval'], root, work_dir=tmp_path / 'work')
    # The fixture's 3 wnid folders are named, in order, red / green / crimson.
    results.update(run(config, ckpt, ['imagenet_zeroshot'], root, '--cfg-options',
                       'test_dataloader.dataset.classes=[red,green,crimson]',
                       work_dir=tmp_path / 'work_in'))
    coco = results['coco_region_cls']
    assert_metrics(coco, COCO_EXPECTED)
    assert coco['region_cls/top5'] == pytest.approx(1.0)  # every rank < 5 of 5 classes
    assert_metrics(results['lvis_region_cls'], {
        'region_cls/top1': 0.5, 'region_cls/mean_class_acc': 0.5, 'region_cls/num_regions': 2})
    assert_metrics(results['grit_region_retrieval'], GRIT_EXPECTED)
    assert_metrics(results['imagenet_zeroshot'], {
        'image_cls/top1': 0.5, 'image_cls/mean_class_acc': 1 / 3, 'image_cls/num_regions': 4})
    assert 'image_cls/top5' not in results['imagenet_zeroshot']  # 3 classes only
    assert_metrics(results['coco_retrieval'], KARPATHY_EXPECTED)
    with open(tmp_path / 'work' / 'benchmark.json') as f:
        saved = json.load(f)['results']
    assert saved == {k: v for k, v in results.items() if k != 'imagenet_zeroshot'}


def test_crop_and_encode_with_and_without_context(toy_data, toy_model, tmp_path):
    """The CLIP protocol (crops) sees the same colours as the Prompter: the same answers.
    A template file is read (its second template adds only a zero word). With
    ``--crop-scale 2`` the crops take in their neighbours, with known effects on the
    ranks (top-2): red box rank 1 (tie with crimson), green 0, blue box 1 (its crop
    holds half as much red as blue: violet beats blue), green box labelled blue 4,
    yellow box labelled green 0 (its crop holds part of the green box) -> 4/5 at 2,
    where tight crops give 3/5 (ranks 1, 0, 0, 4, 2)."""
    root, _ = toy_data
    config, ckpt = toy_model('crop')
    templates = tmp_path / 'templates.txt'
    templates.write_text('{}\na {} thing\n')
    top2 = ['--cfg-options', 'test_evaluator.0.topk=[1,2]']
    tight = run(config, ckpt, ['coco_region_cls'], root, '--templates', str(templates), *top2,
                work_dir=tmp_path / 'tight')['coco_region_cls']
    assert_metrics(tight, dict(COCO_EXPECTED, **{'region_cls/top2': 3 / 5}))
    wide = run(config, ckpt, ['coco_region_cls'], root, '--crop-scale', '2', *top2,
               work_dir=tmp_path / 'wide')['coco_region_cls']
    assert_metrics(wide, {'region_cls/top1': 2 / 5, 'region_cls/top2': 4 / 5,
                          'region_cls/mean_class_acc': 1 / 3})


def test_class_embeddings_are_the_normalised_template_mean(toy_data, make_tiny_cloc_cfg):
    from cllip_mm.registry import MODELS
    cfg = toy_cfg(make_tiny_cloc_cfg(), toy_data[1])
    cfg.model.test_cfg = dict(prompt_templates=('{}', 'blue {}'))
    model = MODELS.build(cfg.model)
    embeds = model.class_embeddings(['red', 'violet'])
    # red: mean of (1, 0, 0) and (1, 0, 1)/sqrt(2), normalised; violet: (1,0,1)/sqrt(2)
    # and (1, 0, 2)/sqrt(5).
    red = torch.tensor([1 + 2 ** -0.5, 0, 2 ** -0.5])
    violet = torch.tensor([2 ** -0.5 + 5 ** -0.5, 0, 2 ** -0.5 + 2 * 5 ** -0.5])
    expected = torch.stack([red / red.norm(), violet / violet.norm()])
    torch.testing.assert_close(embeds, expected)
    assert model.class_embeddings(['red', 'violet']) is embeds  # cached
    model.train()
    assert model.class_embeddings(['red', 'violet']) is not embeds  # weights may change


def test_unknown_template_set_and_task_root(toy_data, toy_model, tmp_path):
    root, _ = toy_data
    config, ckpt = toy_model('prompter')
    with pytest.raises(ValueError, match='unknown template set'):
        run(config, ckpt, ['coco_region_cls'], root, '--templates', 'nope',
            work_dir=tmp_path / 'w1')
    # --task-root gives a task's exact root; a wrong one fails naming the file.
    with pytest.raises(FileNotFoundError, match='instances_val2017.json'):
        run(config, ckpt, ['coco_region_cls'], root, '--task-root',
            f'coco_region_cls={tmp_path}', work_dir=tmp_path / 'w2')


# -------------------------------------------------- the demo export, tools/test.py, 2 procs
@pytest.mark.slow  # over ~30 s on 2 idle cores: out of the fast subset
def test_demo_export_matches_jsonl_and_two_processes_match_one(tiny_region_set,
                                                               make_tiny_cloc_cfg, tmp_path):
    sys.path.insert(0, osp.join(REPO, 'tools', 'dataset_converters'))
    from synthetic_to_coco import convert
    root = str(tmp_path / 'set')
    shutil.copytree(tiny_region_set, root)
    val = osp.join(root, 'annotations', 'val.jsonl')
    with open(val) as f:
        lines = f.readlines()
    with open(val, 'w') as f:  # 15 images: the sampler pads rank 1 with a copy of one
        f.writelines(lines[:15])
    classes = convert(root)['classes']  # writes <root>/mmdet/instances_val.json

    cfg = make_tiny_cloc_cfg()
    cfg.model.tokenizer.path = osp.join(root, 'tokenizer')
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = root + '/'
        loader.dataset.metainfo = dict(classes=tuple(classes))
        assert loader.dataset.pipeline[1].type == 'Resize'
        loader.dataset.pipeline[1].scale = (48, 48)
    assert cfg.model.image_encoder.img_size != 48
    config = str(tmp_path / 'tiny_cloc.py')
    cfg.dump(config)
    ckpt = toy_checkpoint(cfg, str(tmp_path / 'tiny_cloc.pth'))  # random init, seed 0

    # tools/test.py's path: the runner's test loop on annotations/val.jsonl.
    cfg.load_from = ckpt
    cfg.experiment_name = 'jsonl'
    jsonl = Runner.from_cfg(cfg).test()

    tasks = ['synthetic_region_cls', 'synthetic_region_retrieval']
    # evaluated at a larger size than the model's input, as the demo is (128 vs 96):
    # tools/benchmark.py --input-size
    test_size = '48'
    one = run(config, ckpt, tasks, str(tmp_path), '--task-root',
              *(f'{t}={root}' for t in tasks), '--input-size', test_size, work_dir=tmp_path / 'one')
    exported = one['synthetic_region_cls']
    for key in ('top1', 'top5', 'mean_class_acc', 'num_regions'):
        assert exported[f'region_cls/{key}'] == pytest.approx(jsonl[f'region_cls/{key}']), key
    assert exported['region_cls/num_regions'] > 20

    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(p for p in (REPO, TOOLS_DIR, os.environ.get('PYTHONPATH')) if p))
    out = tmp_path / 'two.json'
    proc = subprocess.run([
        # --standalone: torchrun binds a free port itself (no free-port race)
        sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
        osp.join(REPO, 'tools', 'benchmark.py'), config, ckpt,
        '--launcher', 'pytorch', '--tasks', *tasks, '--task-root', *(f'{t}={root}' for t in tasks),
        '--work-dir', str(tmp_path / 'two'), '--out', str(out), '--num-workers', '0',
        '--batch-size', '3', '--input-size', test_size], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out) as f:
        two = json.load(f)['results']
    assert set(two) == set(one)
    for task in tasks:
        assert two[task] == pytest.approx(one[task]), task
    assert 'region_cls/top1' in proc.stdout  # the table


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_benchmark_config_for_tools_test_equals_the_tool(tiny_region_set, tmp_path):
    """configs/benchmarks/cloc_vit-tiny-p8_zeroshot_synthetic-region-cls.py through the
    runner (what tools/test.py does) gives what tools/benchmark.py gives with the demo
    training config and the same (random-init) checkpoint."""
    from mmengine.config import Config
    sys.path.insert(0, osp.join(REPO, 'tools', 'dataset_converters'))
    from synthetic_to_coco import convert
    root = str(tmp_path / 'set')
    shutil.copytree(tiny_region_set, root)
    convert(root, splits=['val'])
    tokenizer = osp.join(root, 'tokenizer')

    cfg = Config.fromfile(osp.join(REPO, 'configs/benchmarks/'
                                   'cloc_vit-tiny-p8_zeroshot_synthetic-region-cls.py'))
    cfg.model.tokenizer.path = tokenizer
    cfg.test_dataloader.update(batch_size=4, num_workers=0)
    cfg.test_dataloader.dataset.data_root = root + '/'
    ckpt = toy_checkpoint(cfg, str(tmp_path / 'demo_random.pth'))
    cfg.update(load_from=ckpt, work_dir=str(tmp_path / 'test'), experiment_name='tools_test')
    via_test = Runner.from_cfg(cfg).test()

    via_tool = run(osp.join(REPO, 'configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py'), ckpt,
                   ['synthetic_region_cls'], str(tmp_path), '--task-root',
                   f'synthetic_region_cls={root}', '--cfg-options',
                   f'model.tokenizer.path={tokenizer}', work_dir=tmp_path / 'tool')
    assert via_tool['synthetic_region_cls'] == pytest.approx(via_test)
    assert via_test['region_cls/num_regions'] > 20
