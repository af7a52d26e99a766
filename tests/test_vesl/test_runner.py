"""VESL end to end: tools/vesl.py's runner with the tiny models, its output loading
and training, resume after SIGKILL, sharded workers, failures counted."""
import glob
import importlib.util
import io
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import tarfile

import pytest

from cllip_mm.testing import tiny_vesl_config
from cllip_mm.vesl import VESLRunner

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HERE = osp.dirname(osp.abspath(__file__))
NUM_IMAGES, NUM_BAD = 10, 1
FILTER_NAMES = ('score', 'min_size', 'per_phrase_nms', 'cross_phrase_nms', 'max_regions')


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def same_records(out_a, out_b, name='annotations.jsonl'):
    """The records of two output dirs, equal but for the image paths (relative to
    each output dir)."""
    strip = ('image', 'filename')
    a, b = (read_jsonl(osp.join(o, name)) for o in (out_a, out_b))
    return [{k: v for k, v in r.items() if k not in strip} for r in a] == \
        [{k: v for k, v in r.items() if k not in strip} for r in b]


def load_tool():
    spec = importlib.util.spec_from_file_location('vesl_tool', osp.join(REPO, 'tools/vesl.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(args, env_extra=None, timeout=600):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, HERE]), OMP_NUM_THREADS='1',
               **(env_extra or {}))
    return subprocess.run([sys.executable, osp.join(REPO, 'tools/vesl.py')] + args,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def config_file(vesl_models, tmp_path_factory):
    """The shipped config on the tiny models, shards of 4 images, batches of 2, every
    output."""
    cfg = tiny_vesl_config(vesl_models, batch_size=2, output=dict(odvg=True, tar=True))
    path = str(tmp_path_factory.mktemp('vesl_cfg') / 'vesl_tiny.py')
    cfg.dump(path)
    return path


@pytest.fixture(scope='module')
def clean_run(config_file, vesl_images, tmp_path_factory):
    """One uninterrupted single-process run (in-process), drawing 2 samples."""
    from mmengine.config import Config
    out = str(tmp_path_factory.mktemp('vesl_out'))
    report = VESLRunner(Config.fromfile(config_file), vesl_images, out, progress=False,
                        draw_samples=2).run()
    return out, report


def test_report_and_outputs(clean_run):
    out, report = clean_run
    assert report['complete'] and report['shards_done'] == report['shards_total'] == 3
    assert report['images_in'] == NUM_IMAGES and report['undecodable'] == NUM_BAD
    assert report['images_out'] == NUM_IMAGES - NUM_BAD and report['errors'] == {}
    records = read_jsonl(osp.join(out, 'annotations.jsonl'))
    assert len(records) == NUM_IMAGES - NUM_BAD
    assert sorted(r['key'] for r in records) == sorted(
        f'img_{i:04d}' for i in range(NUM_IMAGES) if i != 3)
    # every region is accounted for: detected = kept + dropped by some filter
    dropped = report['regions_dropped']
    assert set(FILTER_NAMES) <= set(dropped)
    assert report['regions_detected'] == report['regions_kept'] + sum(dropped.values())
    assert report['regions_kept'] == sum(len(r['regions']) for r in records) > 0
    assert 0 < report['phrases_per_image'] <= 20
    assert sum(report['phrases_per_image_hist'].values()) == NUM_IMAGES - NUM_BAD
    assert set(report['this_run']['time_s']) >= {'decode', 'caption', 'phrases', 'detect',
                                                 'filter', 'write'}
    assert report['this_run']['images_per_s'] > 0
    for r in records:  # filter settings hold in the output
        assert len(r['regions']) <= 50
        assert all(reg['score'] >= 0.1 for reg in r['regions'])
        assert all(min(b[2] - b[0], b[3] - b[1]) >= 8 for b in (g['bbox'] for g in r['regions']))
    done = json.load(open(osp.join(out, 'shards', '00000.done.json')))
    assert [f['key'] for f in done['failed']] == ['img_0003']
    assert done['failed'][0]['stage'] == 'decode'
    assert len(glob.glob(osp.join(out, 'samples', '*.png'))) == 2
    assert not glob.glob(osp.join(out, '**', '*.tmp-*'), recursive=True)


def test_output_loads_as_region_text_odvg_and_tar(clean_run):
    from mmdet.datasets import ODVGDataset

    from cllip_mm.datasets import RegionTextDataset
    out, report = clean_run
    ds = RegionTextDataset(ann_file='annotations.jsonl', data_root=out, on_bad_record='raise',
                           pipeline=[], serialize_data=False)
    assert len(ds) == NUM_IMAGES - NUM_BAD
    assert sum(len(ds.get_data_info(i)['gt_phrases']) for i in range(len(ds))) \
        == report['regions_kept']
    odvg = ODVGDataset(data_root=out, ann_file='annotations_odvg.jsonl',
                       data_prefix=dict(img=''), pipeline=[], return_classes=True,
                       test_mode=True)
    records = read_jsonl(osp.join(out, 'annotations.jsonl'))
    for i, record in enumerate(records):
        info = odvg.get_data_info(i)
        assert osp.isfile(info['img_path']) and info['text'] == record['caption']
        for phrase in info['phrases'].values():
            (start, end), = phrase['tokens_positive']
            assert ' '.join(record['caption'][start:end].lower().split()) == phrase['phrase']
    with tarfile.open(osp.join(out, 'shards', '00001.tar')) as tar:
        names = tar.getnames()
        assert names == [n for k in ('img_0004', 'img_0005', 'img_0006', 'img_0007')
                         for n in (k + '.jpg', k + '.json')]
        member = json.load(tar.extractfile('img_0004.json'))
        assert member['image'] == 'img_0004.jpg' and member['key'] == 'img_0004'


def test_rerun_skips_finished_shards_and_refuses_other_input(clean_run, config_file, tmp_path):
    from mmengine.config import Config
    out, _ = clean_run
    before = open(osp.join(out, 'annotations.jsonl')).read()
    report = VESLRunner(Config.fromfile(config_file), clean_run_input(out), out,
                        progress=False).run()
    assert report['this_run']['shards_processed'] == 0
    assert report['this_run']['shards_skipped'] == 3
    assert open(osp.join(out, 'annotations.jsonl')).read() == before
    other = tmp_path / 'other'
    from cllip_mm.testing import make_vesl_images
    make_vesl_images(str(other), 2)
    with pytest.raises(RuntimeError, match='another input'):
        VESLRunner(Config.fromfile(config_file), str(other), out, progress=False).run()
    changed = Config.fromfile(config_file)
    changed.filters[0].score_thr = 0.3
    with pytest.raises(RuntimeError, match='filters differ'):
        VESLRunner(changed, clean_run_input(out), out, progress=False).run()
    changed = Config.fromfile(config_file)
    changed.batch_size = 3  # not a labelling setting
    assert VESLRunner(changed, clean_run_input(out), out, progress=False).run()['complete']


def clean_run_input(out):
    return json.load(open(osp.join(out, 'plan.json')))['source']


def test_output_trains_tiny_cloc(clean_run, make_tiny_cloc_cfg):
    """3 iterations of the tiny CLOC config (tests/conftest.py) on the VESL output."""
    from mmengine.runner import Runner
    out, _ = clean_run
    cfg = make_tiny_cloc_cfg(max_iters=3)
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.update(data_root=out + '/', ann_file='annotations.jsonl',
                              on_bad_record='raise')
    cfg.train_dataloader.batch_size = 4
    cfg.train_cfg.val_interval = 100  # no validation: pseudo labels have no held-out split
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 3
    assert runner.message_hub.get_scalar('train/loss_region').current() > 0


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_sigkill_midway_then_rerun_gives_every_image_once(config_file, clean_run, vesl_images,
                                                         tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(config_file)
    cfg.custom_imports = dict(imports=['vesl_test_stages'], allow_failed_imports=False)
    cfg.filters = list(cfg.filters) + [dict(type='SigkillAfterImages')]
    config = str(tmp_path / 'vesl_kill.py')
    cfg.dump(config)
    out = str(tmp_path / 'out')
    args = [vesl_images, out, '--config', config, '--no-progress']
    # killed at the 6th decodable image (img_0006, batch 2 of shard 1): shard 0 done, shard 1
    # half written (img_0004/5 added)
    killed = run_tool(args, {'CLLIP_TEST_VESL_SIGKILL_AFTER': '6'})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert osp.isfile(osp.join(out, 'shards', '00000.done.json'))
    assert not osp.exists(osp.join(out, 'shards', '00001.done.json'))
    partial, = glob.glob(osp.join(out, 'shards', '00001.tar.tmp-*'))
    assert osp.getsize(partial) > 0
    assert not osp.exists(osp.join(out, 'annotations.jsonl'))

    # the same command again (in this process: tools/vesl.py's main)
    rerun_report = load_tool().main(args)
    report = json.load(open(osp.join(out, 'report.json')))
    assert report == json.loads(json.dumps(rerun_report))
    assert report['this_run']['shards_skipped'] == 1
    assert report['images_in'] == NUM_IMAGES and report['images_out'] == NUM_IMAGES - NUM_BAD
    records = read_jsonl(osp.join(out, 'annotations.jsonl'))
    keys = [r['key'] for r in records]
    assert len(keys) == len(set(keys)) == NUM_IMAGES - NUM_BAD
    assert same_records(out, clean_run[0])
    assert not glob.glob(osp.join(out, '**', '*.tmp-*'), recursive=True)


@pytest.mark.slow  # over ~10 s on 2 idle cores (or its module fixture is): out of the fast subset
def test_two_workers_equal_one(config_file, clean_run, vesl_images, tmp_path):
    from mmengine.config import Config
    out = str(tmp_path / 'out')
    args = [vesl_images, out, '--config', config_file, '--no-progress', '--num-workers', '2']
    worker1 = subprocess.Popen(
        [sys.executable, osp.join(REPO, 'tools/vesl.py')] + args + ['--worker-id', '1'],
        env=dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1'),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    report0 = VESLRunner(Config.fromfile(config_file), vesl_images, out, worker_id=0,
                         num_workers=2, progress=False).run()
    _, err = worker1.communicate(timeout=600)
    assert worker1.returncode == 0, err[-3000:]
    assert report0['this_run']['shards_processed'] == 2  # shards 0 and 2
    if not report0['complete']:  # worker 1 finished last and merged
        assert osp.isfile(osp.join(out, 'reports', 'worker-1-of-2.json'))
    for name in ('annotations.jsonl', 'annotations_odvg.jsonl'):
        assert same_records(out, clean_run[0], name)
    report = json.load(open(osp.join(out, 'report.json')))
    assert report['regions_kept'] == clean_run[1]['regions_kept']


def test_model_error_on_one_image_is_counted(vesl_models, vesl_images, tmp_path):
    import vesl_test_stages  # noqa: F401  registers FailOnWidth
    from PIL import Image
    width = Image.open(osp.join(vesl_images, 'img_0005.jpg')).size[0]
    cfg = tiny_vesl_config(vesl_models, captioner=dict(type='FailOnWidth', width=width),
                           shard_size=100)
    cfg.captioner = dict(type='FailOnWidth', width=width)
    report = VESLRunner(cfg, vesl_images, str(tmp_path / 'out'), progress=False).run()
    failing = [i for i in range(NUM_IMAGES) if i != 3 and Image.open(
        osp.join(vesl_images, f'img_{i:04d}.jpg')).size[0] == width]
    assert report['errors'] == {'caption': len(failing)}
    assert report['images_out'] == NUM_IMAGES - NUM_BAD - len(failing)
    records = read_jsonl(str(tmp_path / 'out' / 'annotations.jsonl'))
    assert all(r['caption'].startswith('a red dog') for r in records)


def test_tar_input_with_alt_text(vesl_models, vesl_images, tmp_path):
    """img2dataset shards in, existing captions, images copied out, dataset loads."""
    from cllip_mm.datasets import RegionTextDataset
    shards = tmp_path / 'shards'
    shards.mkdir()
    paths = sorted(glob.glob(osp.join(vesl_images, '*.jpg')))
    for s in range(2):
        with tarfile.open(str(shards / f'{s:05d}.tar'), 'w') as tar:
            for i, path in enumerate(paths[s * 5:(s + 1) * 5]):
                key = f'{s:05d}{i:04d}'
                for name, data in ((key + '.jpg', open(path, 'rb').read()),
                                   (key + '.json', json.dumps(dict(
                                       key=key, caption='a black bird over the river'
                                   )).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    cfg = tiny_vesl_config(vesl_models)
    cfg.captioner = dict(type='ExistingCaptions')
    out = str(tmp_path / 'out')
    report = VESLRunner(cfg, str(shards / '{00000..00001}.tar'), out, progress=False).run()
    assert report['shards_total'] == 2 and report['images_out'] == NUM_IMAGES - NUM_BAD
    ds = RegionTextDataset(ann_file='annotations.jsonl', data_root=out, pipeline=[],
                           serialize_data=False)
    info = ds.get_data_info(0)
    assert info['img_path'] == osp.join(out, 'images', '00000', '000000000.jpg')
    assert info['caption'] == 'a black bird over the river'
    assert set(info['gt_phrases']) <= {'black bird', 'river'}
