# Copyright (c) cllip_mm contributors. All rights reserved.
"""The converters' command-line flags that no other test runs, each against its effect.

Model converters (tools/model_converters): ``clip_to_cllip.py --act / --tokenizer-out /
--tokenizer / --img-size H W``, ``cllip_to_hf.py --dtype / --tokenizer / --cfg-options``,
``cllip_to_mmdet.py --img-size (without --config) / --parts`` (a part list that works).
Dataset converters (tools/dataset_converters): ``coco_caption2odvg.py --select first /
join, --unmentioned``, ``vg2odvg.py --sep``, ``generate_synthetic_regions.py --min-size
/ --max-size / --img-format / --no-tokenizer / --seed``, every flag of
``region_text2shards.py`` and of ``synthetic_to_coco.py`` (the other tests call their
``convert()`` functions, not the command line).

Flags already run with their effect checked elsewhere: clip_to_cllip ``--src-format``,
``--img-size N``, ``--vision-heads`` / ``--text-heads``, ``--config``, ``--cfg-out``
(tests/test_models/test_converters); cllip_to_hf ``--no-prompter``; cllip_to_mmdet
``--config``, ``--cfg-options`` (tests/test_mmdet_plugins); coco_caption2odvg ``-o``,
``--select each``; vg2odvg ``-o``, ``--max-phrases``; grit_to_odvg ``--tokenizer``
(tests/test_datasets/test_public_datasets.py); generate_synthetic_regions ``--out``,
``--num-train``, ``--num-val``, ``--min-objects``, ``--max-objects``
(tests/test_tools/test_generate_synthetic_regions.py).
"""
import importlib.util
import json
import os
import os.path as osp
import pickle
import sys
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
REPO = osp.dirname(TESTS)
for _helpers in ('test_models/test_converters', 'test_datasets'):
    if osp.join(TESTS, _helpers) not in sys.path:
        sys.path.insert(0, osp.join(TESTS, _helpers))
from public_layouts import write_coco, write_visual_genome  # noqa: E402
from tiny_clip import load_tool, make_clip_tokenizer, save_hf_clip, tiny_hf_clip  # noqa: E402

from cllip_mm.utils.weights_meta import META_KEY  # noqa: E402


def dataset_tool(name):
    path = osp.join(REPO, 'tools', 'dataset_converters', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'flags_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def read_json(path):
    with open(path) as f:
        return json.load(f)


def checkpoint(path):
    return torch.load(str(path), map_location='cpu', weights_only=True)


# ============================================================== clip_to_cllip.py
@pytest.fixture(scope='module')
def hf_clip(tmp_path_factory):
    """A tiny GELU HF CLIP save_pretrained directory with its CLIP tokenizer files, and
    that tokenizer's own directory."""
    tmp = tmp_path_factory.mktemp('hf_clip')
    tokenizer = make_clip_tokenizer(tmp / 'tok')
    return dict(src=save_hf_clip(tiny_hf_clip('gelu'), tmp / 'hf', tokenizer),
                tokenizer=tokenizer)


def clip_to_cllip(hf_clip, out, *flags):
    assert load_tool('clip_to_cllip').main([hf_clip['src'], str(out), '--src-format', 'hf',
                                            *flags]) == 0
    return checkpoint(out)['meta']


def test_clip_to_cllip_act_overrides_the_source_activation(hf_clip, tmp_path):
    """The source says gelu (HF hidden_act); --act quick_gelu builds both towers with
    QuickGELU and records it in meta['cllip_mm_arch']."""
    default = clip_to_cllip(hf_clip, tmp_path / 'default.pth')
    quick = clip_to_cllip(hf_clip, tmp_path / 'quick.pth', '--act', 'quick_gelu')
    for meta, act in ((default, 'gelu'), (quick, 'quick_gelu')):
        assert meta['model_cfg']['image_encoder']['act'] == act
        assert meta['model_cfg']['text_encoder']['act'] == act
        assert (meta[META_KEY]['vision_act'], meta[META_KEY]['text_act']) == (act, act)


def test_clip_to_cllip_tokenizer_out(hf_clip, tmp_path):
    out_dir = tmp_path / 'elsewhere' / 'tok'
    meta = clip_to_cllip(hf_clip, tmp_path / 'clip.pth', '--tokenizer-out', str(out_dir))
    assert meta['model_cfg']['tokenizer']['path'] == str(out_dir)
    assert sorted(os.listdir(out_dir)) == ['tokenizer.json', 'tokenizer_config.json']
    for name in os.listdir(out_dir):  # the source's files, as they are
        with open(osp.join(hf_clip['src'], name), 'rb') as f:
            assert (out_dir / name).read_bytes() == f.read(), name
    assert not (tmp_path / 'clip_tokenizer').exists()  # the default place
    assert 'tokenizer_vocab' in meta[META_KEY]


def test_clip_to_cllip_tokenizer_is_named_not_copied(hf_clip, tmp_path):
    default = clip_to_cllip(hf_clip, tmp_path / 'a.pth')
    assert default['model_cfg']['tokenizer']['path'] == str(tmp_path / 'a_tokenizer')
    named = clip_to_cllip(hf_clip, tmp_path / 'b.pth', '--tokenizer', hf_clip['tokenizer'])
    assert named['model_cfg']['tokenizer'] == dict(
        type='HFTokenizer', path=hf_clip['tokenizer'], context_length=32)
    assert not (tmp_path / 'b_tokenizer').exists()
    assert named[META_KEY]['tokenizer_vocab'] == default[META_KEY]['tokenizer_vocab']


def test_clip_to_cllip_img_size_h_w(hf_clip, tmp_path):
    """32 x 32 px (4 x 4 patches of 8) -> 32 x 64 px: 1 + 4 x 8 positions."""
    out = tmp_path / 'rect.pth'
    meta = clip_to_cllip(hf_clip, out, '--img-size', '32', '64')
    key = 'image_encoder.positional_embedding'
    assert checkpoint(out)['state_dict'][key].shape == (1 + 4 * 8, 32)
    assert list(meta['model_cfg']['image_encoder']['img_size']) == [32, 64]
    old, new = meta['conversion_report']['resized'][key]
    assert (list(old), list(new)) == ([1 + 4 * 4, 32], [1 + 4 * 8, 32])


# ================================================================ cllip_to_hf.py
def cllip_to_hf(tiny_cloc_checkpoint, out, *flags):
    config, ckpt = tiny_cloc_checkpoint
    assert load_tool('cllip_to_hf').main([config, ckpt, str(out), *flags]) == 0
    return str(out)


@pytest.fixture(scope='module')
def hf_default(tiny_cloc_checkpoint, tmp_path_factory):
    return cllip_to_hf(tiny_cloc_checkpoint, tmp_path_factory.mktemp('hf_export') / 'hf')


def safetensors_dtypes(path):
    from safetensors.torch import load_file
    return {v.dtype for v in load_file(osp.join(path, 'model.safetensors')).values()}


def test_cllip_to_hf_dtype(tiny_cloc_checkpoint, hf_default, tmp_path):
    from transformers import CLIPModel
    assert safetensors_dtypes(hf_default) == {torch.float32}
    out = cllip_to_hf(tiny_cloc_checkpoint, tmp_path / 'bf16', '--dtype', 'bfloat16')
    assert safetensors_dtypes(out) == {torch.bfloat16}
    half, full = (CLIPModel.from_pretrained(p, torch_dtype=torch.float32).state_dict()
                  for p in (out, hf_default))
    for key, value in full.items():  # the same weights, rounded to bfloat16
        torch.testing.assert_close(half[key], value.to(torch.bfloat16).float(), rtol=0,
                                   atol=0, msg=key)


def test_cllip_to_hf_tokenizer(tiny_cloc_checkpoint, hf_default, tmp_path):
    """--tokenizer exports that tokenizer, not the config's model.tokenizer.path."""
    from transformers import AutoTokenizer

    from cllip_mm.models.tokenizers import build_word_level_tokenizer
    other = str(tmp_path / 'zoo_tokenizer')
    build_word_level_tokenizer(['a zebra and a giraffe'], other)
    out = cllip_to_hf(tiny_cloc_checkpoint, tmp_path / 'hf', '--tokenizer', other)
    assert 'zebra' in AutoTokenizer.from_pretrained(out).get_vocab()
    assert 'zebra' not in AutoTokenizer.from_pretrained(hf_default).get_vocab()
    assert 'circle' in AutoTokenizer.from_pretrained(hf_default).get_vocab()


def test_cllip_to_hf_cfg_options(tiny_cloc_checkpoint, hf_default, tmp_path):
    """The data preprocessor's mean / std (0-255) become the exported image processor's
    (0-1): 127.5 / 51 -> 0.5 / 0.2."""
    out = cllip_to_hf(tiny_cloc_checkpoint, tmp_path / 'hf', '--cfg-options',
                      'model.data_preprocessor.mean=[127.5,127.5,127.5]',
                      'model.data_preprocessor.std=[51.0,51.0,51.0]')
    processor = read_json(osp.join(out, 'preprocessor_config.json'))
    assert processor['image_mean'] == pytest.approx([0.5] * 3)
    assert processor['image_std'] == pytest.approx([0.2] * 3)
    default = read_json(osp.join(hf_default, 'preprocessor_config.json'))
    assert default['image_mean'] == pytest.approx([122.7709383 / 255, 116.7460125 / 255,
                                                   104.09373615 / 255])


# ============================================================== cllip_to_mmdet.py
def cllip_to_mmdet(tiny_cloc_checkpoint, out, *flags):
    assert load_tool('cllip_to_mmdet').main([tiny_cloc_checkpoint[1], str(out), *flags]) == 0
    return checkpoint(out)


POS = 'backbone.vit.positional_embedding'


def test_cllip_to_mmdet_img_size_without_config(tiny_cloc_checkpoint, tmp_path):
    """The tiny CLOC: 32 px, patch 8, width 32 -> 1 + 4 x 4 positions; --img-size 64 128
    -> 1 + 8 x 16, --img-size 48 -> 1 + 6 x 6; without it the grid is kept."""
    kept = cllip_to_mmdet(tiny_cloc_checkpoint, tmp_path / 'kept.pth')
    assert kept['state_dict'][POS].shape == (1 + 4 * 4, 32) and kept['meta']['img_size'] is None
    rect = cllip_to_mmdet(tiny_cloc_checkpoint, tmp_path / 'rect.pth', '--img-size', '64', '128')
    assert rect['state_dict'][POS].shape == (1 + 8 * 16, 32)
    assert rect['meta']['img_size'] == [64, 128]
    square = cllip_to_mmdet(tiny_cloc_checkpoint, tmp_path / 'sq.pth', '--img-size', '48')
    assert square['state_dict'][POS].shape == (1 + 6 * 6, 32)
    assert square['meta']['img_size'] == [48, 48]
    # the class token's embedding is kept as it is
    torch.testing.assert_close(square['state_dict'][POS][0], kept['state_dict'][POS][0])


def test_cllip_to_mmdet_parts(tiny_cloc_checkpoint, tmp_path):
    every = cllip_to_mmdet(tiny_cloc_checkpoint, tmp_path / 'all.pth')
    assert {k.split('.')[0] for k in every['state_dict']} == {
        'backbone', 'language_model', 'prompter', 'logit_scale'}
    text = cllip_to_mmdet(tiny_cloc_checkpoint, tmp_path / 'text.pth', '--parts',
                          'language_model')
    assert {k.split('.')[0] for k in text['state_dict']} == {'language_model'}
    assert text['meta']['parts'] == ['language_model'] and text['meta']['left_out'] == []
    for key, value in text['state_dict'].items():
        assert torch.equal(value, every['state_dict'][key]), key
    two = cllip_to_mmdet(tiny_cloc_checkpoint, tmp_path / 'two.pth', '--parts', 'backbone',
                         'prompter')
    # the Prompter comes with its temperature (logit_scale)
    assert {k.split('.')[0] for k in two['state_dict']} == {'backbone', 'prompter',
                                                            'logit_scale'}
    assert two['meta']['parts'] == ['backbone', 'prompter', 'logit_scale']


# ============================================================ coco_caption2odvg.py
@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('coco'))
    files = write_coco(root)
    return {k: osp.join(root, v) for k, v in files.items()}


def coco_caption2odvg(coco, out, *flags):
    summary = dataset_tool('coco_caption2odvg').main(
        [coco['captions'], coco['instances'], '-o', str(out), *flags])
    return summary, read_jsonl(out)


def test_coco_caption2odvg_select(coco, tmp_path):
    """Image 139 has two captions: --select first (the default) keeps the first one,
    join joins both with a space; either way one line per image (3)."""
    for flags in ((), ('--select', 'first')):
        summary, lines = coco_caption2odvg(coco, tmp_path / 'first.jsonl', *flags)
        assert summary['records'] == 3
        assert [line['grounding']['caption'] for line in lines] == [
            'A person walking two dogs in a park.', 'A cat sitting next to an umbrella.',
            'An open umbrella on the beach.']
    summary, lines = coco_caption2odvg(coco, tmp_path / 'join.jsonl', '--select', 'join')
    assert summary['records'] == 3
    caption = lines[0]['grounding']['caption']
    assert caption == 'A person walking two dogs in a park. Someone with their dogs outside.'
    # spans index the joined caption
    (start, end), = lines[0]['grounding']['regions'][1]['tokens_positive']
    assert caption[start:end] == 'dogs'


def test_coco_caption2odvg_unmentioned(coco, tmp_path):
    """'Someone with their dogs outside.' does not name the person: kept with no span by
    default, dropped (and counted) with --unmentioned drop."""
    kept, keep = coco_caption2odvg(coco, tmp_path / 'keep.jsonl', '--select', 'each')
    caption = keep[1]['grounding']['caption']
    assert caption == 'Someone with their dogs outside.'
    start = caption.index('dogs')
    assert [(r['phrase'], r['tokens_positive']) for r in keep[1]['grounding']['regions']] \
        == [('person', []), ('dog', [[start, start + 4]])]
    assert 'region not in caption' not in kept['dropped']
    dropped, drop = coco_caption2odvg(coco, tmp_path / 'drop.jsonl', '--select', 'each',
                                      '--unmentioned', 'drop')
    assert [r['phrase'] for r in drop[1]['grounding']['regions']] == ['dog']
    assert dropped['dropped']['region not in caption'] == 1
    # boxes: 139 (person + 2 dogs) twice, 285 (cat), 632 (umbrella); less the person once
    assert (kept['boxes'], dropped['boxes']) == (8, 7)
    assert (kept['records'], dropped['records']) == (4, 4)
    assert [line['grounding']['regions'] for i, line in enumerate(drop) if i != 1] == [
        line['grounding']['regions'] for i, line in enumerate(keep) if i != 1]


# ====================================================================== vg2odvg.py
def test_vg2odvg_sep(tmp_path):
    root = str(tmp_path)
    files = write_visual_genome(root)
    tool = dataset_tool('vg2odvg')
    args = [osp.join(root, files['regions']), osp.join(root, files['images'])]
    tool.main([*args, '-o', str(tmp_path / 'dot.jsonl')])
    tool.main([*args, '-o', str(tmp_path / 'bar.jsonl'), '--sep', ' | '])
    dot, bar = read_jsonl(tmp_path / 'dot.jsonl'), read_jsonl(tmp_path / 'bar.jsonl')
    assert dot[0]['grounding']['caption'] == \
        'the clock is green in colour. shade is along the street'
    g = bar[0]['grounding']
    assert g['caption'] == 'the clock is green in colour | shade is along the street'
    assert [r['tokens_positive'] for r in g['regions']] == [[[0, 28]], [[31, 56]]]
    for region in g['regions']:
        (s, e), = region['tokens_positive']
        assert g['caption'][s:e] == region['phrase']


# ====================================================== generate_synthetic_regions.py
def generate(out, *flags):
    return dataset_tool('generate_synthetic_regions').main(
        ['--out', str(out), '--num-train', '3', '--num-val', '1', '--max-objects', '2',
         '--no-tokenizer', *flags])


def test_generate_synthetic_regions_image_flags(tmp_path):
    """--min-size / --max-size bound both sides; --img-format png writes PNG files;
    --no-tokenizer builds neither tokenizer."""
    out = tmp_path / 'png'
    summary = generate(out, '--min-size', '40', '--max-size', '44', '--img-format', 'png')
    assert summary['tokenizer'] is None and summary['tokenizer_t5'] is None
    assert not (out / 'tokenizer').exists() and not (out / 'tokenizer_t5').exists()
    records = read_jsonl(out / 'annotations' / 'train.jsonl') + read_jsonl(
        out / 'annotations' / 'val.jsonl')
    assert len(records) == 4
    for r in records:
        assert r['image'].endswith('.png') and 40 <= r['width'] <= 44 and 40 <= r['height'] <= 44
        with Image.open(out / r['image']) as img:
            assert img.format == 'PNG' and img.size == (r['width'], r['height'])
    default = generate(tmp_path / 'jpg')
    for r in read_jsonl(tmp_path / 'jpg' / 'annotations' / 'train.jsonl'):
        assert r['image'].endswith('.jpg') and 112 <= min(r['width'], r['height'])
    assert default['num_images'] == dict(train=3, val=1)


def test_generate_synthetic_regions_seed(tmp_path):
    generate(tmp_path / 'a', '--seed', '3', '--max-size', '64', '--min-size', '48')
    generate(tmp_path / 'b', '--seed', '3', '--max-size', '64', '--min-size', '48')
    generate(tmp_path / 'c', '--seed', '4', '--max-size', '64', '--min-size', '48')
    ann = 'annotations/train.jsonl'
    assert (tmp_path / 'a' / ann).read_bytes() == (tmp_path / 'b' / ann).read_bytes()
    assert (tmp_path / 'a' / ann).read_bytes() != (tmp_path / 'c' / ann).read_bytes()


# ============================================================= region_text2shards.py
@pytest.fixture
def odvg_root(tmp_path):
    """ODVG detection lines under images/: b.jpg (dog, person, dog; its `category` fields
    say otherwise: the label map decides), a.jpg (cat); a label map; COCO captions of
    b.jpg."""
    (tmp_path / 'images').mkdir()
    Image.new('RGB', (40, 30), (10, 20, 30)).save(tmp_path / 'images' / 'a.jpg')
    Image.new('RGB', (50, 60), (30, 20, 10)).save(tmp_path / 'images' / 'b.jpg')
    (tmp_path / 'label_map.json').write_text(json.dumps({'0': 'person', '1': 'dog',
                                                         '2': 'cat'}))
    lines = [dict(filename='b.jpg', height=60, width=50, detection=dict(instances=[
                 dict(bbox=[1, 1, 20, 30], label=1, category='hound'),
                 dict(bbox=[10, 10, 40, 50], label=0, category='man'),
                 dict(bbox=[2, 2, 9, 9], label=1, category='hound')])),
             dict(filename='a.jpg', height=30, width=40, detection=dict(instances=[
                 dict(bbox=[1, 1, 5, 5], label=2, category='kitty')]))]
    (tmp_path / 'ann.jsonl').write_text(''.join(json.dumps(x) + '\n' for x in lines))
    (tmp_path / 'captions.json').write_text(json.dumps(dict(
        images=[dict(id=7, file_name='b.jpg')],
        annotations=[dict(id=1, image_id=7, caption='A dog and a man.')])))
    return tmp_path


def shard_records(paths):
    """``(member names, records)`` of the shards, in order."""
    names, records = [], []
    for path in paths:
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                names.append(member.name)
                if member.name.endswith('.json'):
                    records.append(json.load(tar.extractfile(member)))
    return names, records


def shards(root, *flags, pattern='shards/s-%03d.tar'):
    return dataset_tool('region_text2shards').main(
        [str(root), 'ann.jsonl', str(root / pattern), *flags])


ODVG_FLAGS = ('--data-prefix', 'images/', '--label-map-file', 'label_map.json',
              '--captions-file', 'captions.json')


def test_region_text2shards_odvg_flags(odvg_root):
    summary = shards(odvg_root, *ODVG_FLAGS, '--samples-per-shard', '1')
    assert summary['samples'] == 2 and len(summary['shards']) == 2  # one sample a shard
    assert [osp.basename(p) for p in summary['shards']] == ['s-000.tar', 's-001.tar']
    names, records = shard_records(summary['shards'])
    assert names == ['000000000.jpg', '000000000.json', '000000001.jpg', '000000001.json']
    with open(odvg_root / 'images' / 'b.jpg', 'rb') as f, \
            tarfile.open(summary['shards'][0]) as tar:
        assert tar.extractfile('000000000.jpg').read() == f.read()  # --data-prefix
    # --label-map-file names the instances; --captions-file gives b.jpg its caption
    assert [r['phrase'] for r in records[0]['regions']] == ['dog', 'person', 'dog']
    assert records[0]['caption'] == 'A dog and a man.'
    assert records[1]['caption'] == 'a photo of cat.'  # no caption in the file: template
    assert records[0]['regions'][1]['bbox'] == [10.0, 10.0, 40.0, 50.0]

    # the default: all samples in one shard
    summary = shards(odvg_root, *ODVG_FLAGS, pattern='one/s-%03d.tar')
    assert len(summary['shards']) == 1 and summary['samples'] == 2
    # without --captions-file: the template caption
    summary = shards(odvg_root, *ODVG_FLAGS[:4], pattern='nocap/s-%03d.tar')
    assert shard_records(summary['shards'])[1][0]['caption'] == 'a photo of dog and person.'
    # without --label-map-file: the lines' own `category`
    summary = shards(odvg_root, *ODVG_FLAGS[:2], pattern='nomap/s-%03d.tar')
    assert [r['phrase'] for r in shard_records(summary['shards'])[1][0]['regions']] == [
        'hound', 'man', 'hound']
    # without --data-prefix the images are not found
    with pytest.raises(ValueError, match="image 'b.jpg'"):
        shards(odvg_root, *ODVG_FLAGS[2:], pattern='noprefix/s-%03d.tar')


def test_region_text2shards_skip_bad(odvg_root):
    with open(odvg_root / 'ann.jsonl', 'a') as f:
        f.write(json.dumps(dict(filename='b.jpg', height=60, width=50)) + '\n')  # no task
    with pytest.raises(ValueError, match='ann.jsonl:3'):
        shards(odvg_root, *ODVG_FLAGS, pattern='strict/s-%03d.tar')
    summary = shards(odvg_root, *ODVG_FLAGS, '--skip-bad', pattern='skip/s-%03d.tar')
    assert summary['samples'] == 2 and sum(summary['skipped'].values()) == 1
    assert len(shard_records(summary['shards'])[1]) == 2


# ============================================================== synthetic_to_coco.py
@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    """6 train / 3 val synthetic images (the 32 phrases of classes.txt)."""
    from cllip_mm.datasets.synthetic import generate_synthetic_regions
    root = str(tmp_path_factory.mktemp('synthetic_flags'))
    generate_synthetic_regions(root, num_train=6, num_val=3, seed=0, min_size=48, max_size=64,
                               build_tokenizer=False)
    return root


def to_coco(*argv):
    return dataset_tool('synthetic_to_coco').main(list(argv))


def test_synthetic_to_coco_out_dir_and_splits(synthetic, tmp_path):
    out = tmp_path / 'out'
    summary = to_coco(synthetic, '--out-dir', str(out), '--splits', 'val')
    assert summary['out_dir'] == str(out) and list(summary['files']) == ['val']
    assert sorted(os.listdir(out)) == sorted([
        'instances_val.json', 'instances_val_seen.json', 'val_od.jsonl', 'val_vg.jsonl',
        'refexp_val_vg.jsonl', 'refexp_val.json', 'proposals_val.pkl', 'ov_split.json',
        'label_map.json'])
    assert len(read_json(out / 'instances_val.json')['images']) == 3
    assert not osp.exists(osp.join(synthetic, 'mmdet'))  # not the default place


def test_synthetic_to_coco_ann_pattern(synthetic, tmp_path):
    """A split read from another file: the first 2 training records as split 'small'."""
    ann = osp.join(synthetic, 'annotations', 'train.jsonl')
    os.makedirs(osp.join(synthetic, 'subsets'), exist_ok=True)
    with open(ann) as f, open(osp.join(synthetic, 'subsets', 'small_part.jsonl'), 'w') as g:
        g.writelines(f.readlines()[:2])
    out = tmp_path / 'out'
    summary = to_coco(synthetic, '--out-dir', str(out), '--splits', 'small',
                      '--ann-pattern', 'subsets/{split}_part.jsonl')
    assert summary['counts']['small']['images'] == 2
    coco = read_json(out / 'instances_small.json')
    assert [img['file_name'] for img in coco['images']] == [
        r['image'] for r in read_jsonl(ann)[:2]]


def test_synthetic_to_coco_classes_file(synthetic, tmp_path):
    phrases = sorted({r['phrase'] for split in ('train', 'val') for rec in read_jsonl(
        osp.join(synthetic, 'annotations', f'{split}.jsonl')) for r in rec['regions']})
    mine = list(reversed(phrases)) + ['pink hexagon']  # an order of mine + an unused one
    with open(osp.join(synthetic, 'my_classes.txt'), 'w') as f:
        f.write('\n'.join(mine) + '\n')
    out = tmp_path / 'mine'
    summary = to_coco(synthetic, '--out-dir', str(out), '--classes-file', 'my_classes.txt')
    assert summary['classes'] == mine
    assert read_json(out / 'label_map.json') == {str(i): c for i, c in enumerate(mine)}
    assert [c['name'] for c in read_json(out / 'instances_train.json')['categories']] == mine
    # a classes file that is not there: the sorted distinct phrases of the splits
    summary = to_coco(synthetic, '--out-dir', str(tmp_path / 'absent'), '--classes-file',
                      'no_such_file.txt')
    assert summary['classes'] == phrases
    # the default: the generator's classes.txt (all 32 phrases)
    with open(osp.join(synthetic, 'classes.txt')) as f:
        all32 = f.read().splitlines()
    assert len(all32) == 32 and set(phrases) < set(all32)
    assert to_coco(synthetic, '--out-dir', str(tmp_path / 'd'))['classes'] == all32


def test_synthetic_to_coco_novel_classes(synthetic, tmp_path):
    recs = read_jsonl(osp.join(synthetic, 'annotations', 'train.jsonl'))
    novel = sorted({r['regions'][0]['phrase'] for r in recs[:2]})
    out = tmp_path / 'ov'
    summary = to_coco(synthetic, '--out-dir', str(out), '--novel-classes', *novel)
    split = read_json(out / 'ov_split.json')
    assert sorted(split['novel_classes']) == novel == sorted(summary['novel_classes'])
    assert len(split['base_classes']) == 32 - len(novel)
    full, seen = (read_json(out / f'instances_train{s}.json') for s in ('', '_seen'))
    novel_ids = {c['id'] for c in full['categories'] if c['name'] in novel}
    num_novel = sum(a['category_id'] in novel_ids for a in full['annotations'])
    assert num_novel >= 2
    assert len(seen['annotations']) == len(full['annotations']) - num_novel
    assert not any(a['category_id'] in novel_ids for a in seen['annotations'])
    # the flag with no names: no novel class, the seen file keeps every box
    summary = to_coco(synthetic, '--out-dir', str(tmp_path / 'none'), '--novel-classes')
    assert summary['novel_classes'] == []
    none_seen = read_json(tmp_path / 'none' / 'instances_train_seen.json')
    assert len(none_seen['annotations']) == len(full['annotations'])
    # the default: the 8 DEFAULT_NOVEL_CLASSES
    default = to_coco(synthetic, '--out-dir', str(tmp_path / 'default'))
    assert len(default['novel_classes']) == 8 and 'red star' in default['novel_classes']
    with pytest.raises(ValueError, match='not categories'):
        to_coco(synthetic, '--out-dir', str(tmp_path / 'bad'), '--novel-classes', 'pink hexagon')


def proposals(out, split='train'):
    with open(osp.join(out, f'proposals_{split}.pkl'), 'rb') as f:
        return pickle.load(f)


def test_synthetic_to_coco_refexp_proposals_and_seed(synthetic, tmp_path):
    """--refexp-name names the dataset of every expression; --num-random-proposals adds
    that many low-score boxes to the two jittered copies of each box; --seed draws
    other proposals (the same seed the same ones)."""
    a, b, c = (str(tmp_path / n) for n in 'abc')
    to_coco(synthetic, '--out-dir', a, '--splits', 'train')
    to_coco(synthetic, '--out-dir', b, '--splits', 'train', '--refexp-name', 'refcocog',
            '--num-random-proposals', '3')
    to_coco(synthetic, '--out-dir', c, '--splits', 'train', '--seed', '1')
    for out, name in ((a, 'refcoco'), (b, 'refcocog')):
        images = read_json(osp.join(out, 'refexp_train.json'))['images']
        assert images and {img['dataset_name'] for img in images} == {name}
    coco = read_json(osp.join(a, 'instances_train.json'))
    # proposals are keyed <image dir>/<file name>
    key_of = {img['id']: '/'.join(img['file_name'].split('/')[-2:]) for img in coco['images']}
    boxes = dict.fromkeys(key_of.values(), 0)
    for ann in coco['annotations']:
        boxes[key_of[ann['image_id']]] += 1
    pa, pb, pc = proposals(a), proposals(b), proposals(c)
    assert set(pa) == set(boxes)
    for key, n in boxes.items():
        assert len(pa[key]['bboxes']) == 2 * n + 10
        assert len(pb[key]['bboxes']) == 2 * n + 3
        assert (pb[key]['scores'] < 0.4).sum() == 3
        assert not np.array_equal(pa[key]['bboxes'], pc[key]['bboxes'])
    again = str(tmp_path / 'again')
    to_coco(synthetic, '--out-dir', again, '--splits', 'train', '--seed', '1')
    for key in boxes:
        np.testing.assert_array_equal(proposals(again)[key]['bboxes'], pc[key]['bboxes'])
