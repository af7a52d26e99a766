"""benchmarks/downstream_compare.py: the run configs it writes (schedule, seed, optimiser
switches, validation subset), what it reads back from MMEngine's logs, and one end-to-end
run of the closed-set task through mmdet's tools."""
import json
import os.path as osp

import pytest
from mmengine import Config

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


@pytest.fixture(scope='module')
def compare(load_tool):
    return load_tool('benchmarks/downstream_compare.py')


def args_of(compare, *argv):
    return compare.parse_args(['--init', 'random=random', *argv])


def test_run_config_applies_schedule_seed_and_switches(compare, tiny_env, tmp_path):
    args = args_of(compare, '--iters', '100', '--val-interval', '25', '--seeds', '3',
                   '--lr', '1e-3', '--layer-decay', '0.6', '--text-tower', 'frozen',
                   '--schedule', 'step', '--warmup', '10')
    cfg = compare.run_config('ov', args, '/x/ckpt.pth', 3, str(tmp_path), '/x/val.json')
    assert cfg.model.backbone.init_cfg.checkpoint == '/x/ckpt.pth'
    assert cfg.model.language_model.init_cfg.checkpoint == '/x/ckpt.pth'
    assert (cfg.train_cfg.max_iters, cfg.train_cfg.val_interval) == (100, 25)
    assert cfg.randomness.seed == 3
    assert cfg.default_hooks.logger.log_metric_by_epoch is False  # curves by iteration
    assert cfg.optim_wrapper.optimizer.lr == 1e-3
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.6
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys['language_model'] == dict(
        lr_mult=0., decay_mult=0.)
    warmup, step = cfg.param_scheduler
    assert (warmup['type'], warmup['end']) == ('LinearLR', 10)
    assert (step['type'], step['milestones']) == ('MultiStepLR', [80])
    # validation on the subset, the test on the whole split
    assert cfg.val_dataloader.dataset.ann_file == cfg.val_evaluator.ann_file == '/x/val.json'
    assert cfg.test_dataloader.dataset.ann_file == 'mmdet/instances_val.json'
    assert cfg.test_evaluator.ann_file.endswith('mmdet/instances_val.json')

    tuned = compare.run_config('ov', args_of(compare), '/x/ckpt.pth', 0, str(tmp_path), None)
    assert tuned.optim_wrapper.paramwise_cfg.custom_keys['language_model'] == dict(lr_mult=0.1)
    # the closed-set detector has no text tower: the switch leaves it alone
    det = compare.run_config('det', args, '/x/ckpt.pth', 3, str(tmp_path), None)
    assert det.model.type == 'FasterRCNN' and 'language_model' not in det.model
    assert 'language_model' not in det.optim_wrapper.paramwise_cfg.custom_keys

    path = str(tmp_path / 'config.py')
    cfg.dump(path)  # what each run's folder holds
    assert Config.fromfile(path).train_cfg.max_iters == 100


def test_val_interval_must_divide_iters(compare):
    with pytest.raises(SystemExit):
        args_of(compare, '--iters', '100', '--val-interval', '30')


def test_init_specs(compare, tmp_path):
    ckpt = tmp_path / 'a.pth'
    ckpt.write_bytes(b'')
    assert compare.parse_inits([f'a={ckpt}', 'r=random']) == {'a': str(ckpt), 'r': 'random'}
    with pytest.raises(SystemExit, match='does not exist'):
        compare.parse_inits(['a=/no/such.pth'])
    with pytest.raises(SystemExit, match='given twice'):
        compare.parse_inits(['r=random', 'r=random'])


def test_subset_annotations_keeps_whole_images(compare, synthetic_root, tmp_path):
    src = osp.join(synthetic_root, 'mmdet', 'refexp_val.json')
    out = compare.subset_annotations(src, 2, str(tmp_path / 'sub.json'))
    full, sub = json.load(open(src)), json.load(open(out))
    names = list(dict.fromkeys(im['file_name'] for im in full['images']))[:2]
    assert {im['file_name'] for im in sub['images']} == set(names)
    # every expression of the kept images, and only their annotations
    assert len(sub['images']) == sum(im['file_name'] in names for im in full['images'])
    assert {a['image_id'] for a in sub['annotations']} == {im['id'] for im in sub['images']}


def test_curves_and_iterations_to_reach(compare):
    curves = {'cloc': [[100, 0.2], [200, 0.5], [300, 0.6]],
              'clip': [[100, 0.1], [200, 0.3], [300, 0.4]],
              'random': [[100, 0.0], [200, 0.1], [300, 0.1]]}
    reach = compare.reach_table(curves)
    assert reach['cloc'] == {'clip': 200, 'random': 100}
    assert reach['clip'] == {'cloc': None, 'random': 100}
    assert reach['random'] == {'cloc': None, 'clip': None}
    assert compare.mean_curve([[[1, 0.2], [2, 0.4]], [[1, 0.4], [2, 0.6], [3, 1.0]]]) == [
        [1, pytest.approx(0.3)], [2, pytest.approx(0.5)]]


def test_iteration_times_ignore_validation_records(compare, tmp_path):
    run = tmp_path / 'run' / '20260101_000000' / 'vis_data'
    run.mkdir(parents=True)
    lines = [dict(lr=1, loss=2, time=9.0, step=10),   # first window: warm-up, dropped
             dict(lr=1, loss=2, time=1.0, step=20),
             {'coco/bbox_mAP': 0.1, 'time': 5.0, 'data_time': 0.1, 'step': 20},
             dict(lr=1, loss=2, time=3.0, step=30)]
    (run / 'scalars.json').write_text('\n'.join(json.dumps(line) for line in lines))
    times = compare.iteration_times(str(tmp_path / 'run'))
    assert times == dict(sec_per_iter=2.0, val_sec_per_batch=5.0)


def test_markdown_table(compare):
    run = dict(test={'refexp/refcoco_precision@1': 0.5}, sec_per_iter=0.25, train_seconds=60,
               test_seconds=30, cpu_sec_per_iter=0.125, train_cpu_seconds=30,
               test_cpu_seconds=30)
    summary = dict(inits=['cloc'], seeds=[0, 1], iters=10, schedule='step', text_tower='tuned',
                   results={'refexp': {'cloc': dict(runs=[run, dict(run, test={
                       'refexp/refcoco_precision@1': 0.7})])}},
                   reach={'refexp': {'cloc': {}}})
    table = compare.markdown(summary)
    assert '| cloc | 0.600 (0.500-0.700) | 0.250 (4.00; cpu 0.125) | 1.5 (cpu 1.0) |' in table


@pytest.mark.slow
def test_command_end_to_end_closed_set(compare, synthetic_root, tmp_path):
    """Random init, the tiny Faster R-CNN, 2 iterations validated after each, through
    mmdet's train.py / test.py (subprocesses)."""
    work_dir = tmp_path / 'cmp'
    argv = ['--init', 'random=random', '--data-root', synthetic_root, '--work-dir',
            str(work_dir), '--tasks', 'det', '--iters', '2', '--val-interval', '1',
            '--val-images', '2', '--log-interval', '1', '--warmup', '0']
    assert compare.main(argv) == 0
    summary = json.load(open(work_dir / 'summary.json'))
    run, = summary['results']['det']['random']['runs']
    assert set(compare.TASKS['det']['metrics']) <= set(run['test'])
    assert run['sec_per_iter'] > 0 and run['train_seconds'] > 0
    assert 0 < run['cpu_sec_per_iter'] <= run['sec_per_iter'] and run['test_cpu_seconds'] > 0
    assert [step for step, _ in run['val']['coco/bbox_mAP']] == [1, 2]
    assert osp.isfile(run['config']) and osp.dirname(run['config']) == run['run_dir']
    assert Config.fromfile(run['config']).train_cfg.max_iters == 2
    assert (work_dir / 'curves.png').stat().st_size > 0
    assert '| random |' in (work_dir / 'summary.md').read_text()
    report = summary['conversions']['random']['report']
    assert ' -> ' in report[0] and report[-1] == 'Result: OK'
    assert not osp.exists(osp.join(run['run_dir'], 'iter_2.pth'))

    # --reuse reads the recorded run instead of training again; --table-only runs nothing
    train_log = osp.join(run['run_dir'], 'train.log')
    stamp = osp.getmtime(train_log)
    assert compare.main(argv + ['--reuse']) == 0
    assert osp.getmtime(train_log) == stamp
    again, = json.load(open(work_dir / 'summary.json'))['results']['det']['random']['runs']
    assert again['test'] == run['test']
    # another schedule is not the recorded one: left out of a table-only summary
    assert compare.main(argv[:8] + ['--iters', '4', '--val-interval', '2', '--val-images',
                                     '2', '--log-interval', '1', '--warmup', '0',
                                     '--table-only']) == 0
    assert json.load(open(work_dir / 'summary.json'))['results']['det']['random']['runs'] == []
