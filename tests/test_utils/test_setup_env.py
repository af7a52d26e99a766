# Copyright (c) cllip_mm contributors. All rights reserved.
"""cllip_mm.utils.setup_env: the runner set-up tools/train.py and tools/test.py share."""
import argparse
import gc
import os
import os.path as osp
import weakref

import pytest
from mmengine.config import Config

from cllip_mm.utils import add_runner_args, load_runner_config, parse_runner_args, setup_env


def parser_with(argv, monkeypatch):
    monkeypatch.setattr('sys.argv', ['tool.py', *argv])
    parser = argparse.ArgumentParser()
    parser.add_argument('config')
    parser.add_argument('--work-dir')
    add_runner_args(parser)
    return parser


def test_parse_runner_args_exports_local_rank_unless_set(monkeypatch):
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    args = parse_runner_args(parser_with(['c.py', '--local-rank', '3'], monkeypatch))
    assert (args.launcher, args.cfg_options, args.local_rank) == ('none', None, 3)
    assert os.environ['LOCAL_RANK'] == '3'
    monkeypatch.setenv('LOCAL_RANK', '1')  # torchrun's wins
    parse_runner_args(parser_with(['c.py', '--local_rank', '5'], monkeypatch))
    assert os.environ['LOCAL_RANK'] == '1'


@pytest.mark.parametrize('argv,in_file,expected', [  # --work-dir > the config > its name
    (['--work-dir', 'cli'], 'file', 'cli'),
    (['--work-dir', 'cli', '--cfg-options', 'b.c=5', 'work_dir=opt'], 'file', 'cli'),
    (['--cfg-options', 'b.c=5', 'work_dir=opt'], 'file', 'opt'),
    ([], 'file', 'file'),
    ([], None, osp.join('./work_dirs', 'my_cfg')),
])
def test_load_runner_config(tmp_path, monkeypatch, argv, in_file, expected):
    config = str(tmp_path / 'my_cfg.py')
    Config(dict(a=1, b=dict(c=2)) if in_file is None else
           dict(a=1, b=dict(c=2), work_dir=in_file)).dump(config)
    args = parse_runner_args(parser_with(
        [config, '--launcher', 'pytorch', *argv], monkeypatch))
    cfg = load_runner_config(args)
    assert (cfg.launcher, cfg.a, cfg.work_dir) == ('pytorch', 1, expected)
    assert cfg.b.c == (5 if 'b.c=5' in argv else 2)


def test_run_with_runner_drops_the_runner_before_the_process_group(monkeypatch):
    class FakeRunner:
        pass

    calls, alive = [], []
    monkeypatch.setattr(setup_env, 'setup_cpu_distributed', lambda cfg: calls.append('setup'))
    monkeypatch.setattr(setup_env, 'build_runner', lambda cfg: FakeRunner())

    def teardown():
        gc.collect()
        alive.append(ref() is not None)
        calls.append('teardown')

    monkeypatch.setattr(setup_env, 'teardown_distributed', teardown)

    def work(runner):
        nonlocal ref
        ref = weakref.ref(runner)
        calls.append('work')

    ref = None
    setup_env.run_with_runner(Config(dict(launcher='none')), 'tools/x.py', work)
    assert calls == ['setup', 'work', 'teardown'] and alive == [False]
