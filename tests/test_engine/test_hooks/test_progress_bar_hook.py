# Copyright (c) cllip_mm contributors. All rights reserved.
"""ProgressBarHook: what it draws on stderr over test / validation epochs.

mmengine's ``ProgressBar`` (bar width 50 when the terminal is wide enough) writes
``[<50 blanks>] 0/N, elapsed: 0s, ETA:`` when it starts, then for the k-th batch
``\\r[<int(50 * k / N) '>'s, blanks>] k/N, <fps> task/s, elapsed: ...``.
"""
import io
import itertools
import re
import sys
from types import SimpleNamespace

import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from toy_model_helpers import toy_cfg

from cllip_mm.engine.hooks import ProgressBarHook
from cllip_mm.engine.hooks import progress_bar_hook as hook_module
from cllip_mm.registry import HOOKS

WIDTH = 50
_ids = itertools.count()


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    """The bar's full width (50), whatever the terminal running the tests."""
    monkeypatch.setenv('COLUMNS', '200')


def bars(text):
    """``(filled, counted, total)`` of every bar state drawn in ``text``."""
    return [(len(m.group(1).rstrip(' ')), int(m.group(2)), int(m.group(3)))
            for m in re.finditer(r'\[([> ]*)\] (\d+)/(\d+),', text)]


def fake_runner(val_batches=3, test_batches=5):
    return SimpleNamespace(val_dataloader=[None] * val_batches,
                           test_dataloader=[None] * test_batches)


def run_epoch(hook, runner, mode, batches):
    getattr(hook, f'before_{mode}_epoch')(runner)
    for i in range(batches):
        getattr(hook, f'after_{mode}_iter')(runner, i)
    getattr(hook, f'after_{mode}_epoch')(runner, metrics={})


def test_is_registered_and_runs_last():
    hook = HOOKS.build(dict(type='ProgressBarHook'))
    assert isinstance(hook, ProgressBarHook)
    assert hook.priority == 'VERY_LOW'


@pytest.mark.parametrize('mode,total', [('test', 5), ('val', 3)])
def test_one_bar_state_per_batch_of_the_epochs_loader(capsys, mode, total):
    """5 test batches / 3 val batches (each epoch counts its own loader): the start
    state, then k/N with int(50 k / N) marks for k = 1..N, then one newline."""
    run_epoch(ProgressBarHook(), fake_runner(), mode, total)
    out = capsys.readouterr()
    assert out.out == ''
    assert out.err.startswith(f'[{" " * WIDTH}] 0/{total}, elapsed: 0s, ETA:')
    assert bars(out.err) == [(0, 0, total)] + [
        (WIDTH * k // total, k, total) for k in range(1, total + 1)]
    assert out.err.count('\r') == total
    assert out.err.endswith('s\n') and out.err.count('\n') == 1


def test_the_line_ends_with_the_last_batch_before_the_epoch_end_hooks(capsys):
    """The epoch-end hooks of a higher priority (LoggerHook's metrics) write after the
    bar's last state and newline, not after a bar still waiting for its newline."""
    hook, runner = ProgressBarHook(), fake_runner()
    hook.before_test_epoch(runner)
    for i in range(4):
        hook.after_test_iter(runner, i)
    assert '\n' not in capsys.readouterr().err  # 4 of 5: the bar's line goes on
    hook.after_test_iter(runner, 4)
    last = capsys.readouterr().err
    assert bars(last) == [(WIDTH, 5, 5)] and last.endswith('\n')
    hook.after_test_epoch(runner, metrics={})
    assert capsys.readouterr().err == ''  # nothing left to end


def test_an_epoch_cut_short_still_ends_its_line(capsys):
    hook, runner = ProgressBarHook(), fake_runner()
    hook.before_test_epoch(runner)
    hook.after_test_iter(runner, 0)
    hook.after_test_epoch(runner, metrics={})
    err = capsys.readouterr().err
    assert bars(err)[-1] == (WIDTH // 5, 1, 5) and err.endswith('\n')


def test_each_epoch_starts_a_new_bar(capsys):
    hook, runner = ProgressBarHook(), fake_runner(val_batches=2)
    run_epoch(hook, runner, 'val', 2)
    run_epoch(hook, runner, 'val', 2)
    err = capsys.readouterr().err
    assert bars(err) == [(0, 0, 2), (25, 1, 2), (50, 2, 2)] * 2
    assert err.count('\n') == 2


def test_other_processes_draw_nothing(capsys, monkeypatch):
    monkeypatch.setattr(hook_module, 'is_main_process', lambda: False)
    hook = ProgressBarHook()
    run_epoch(hook, fake_runner(), 'test', 5)
    run_epoch(hook, fake_runner(), 'val', 3)
    assert capsys.readouterr() == ('', '')


def test_in_a_run_the_metrics_line_is_not_glued_to_the_bar(tmp_path, monkeypatch):
    """Runner.val() / Runner.test() of the toy task (8 val samples, 12 test samples,
    batch 4), LoggerHook logging every iteration and the metrics, on the same stream as
    the bar (a terminal): the bars reach 2/2 and 3/3, and the metrics lines start a line."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, 'stdout', stream)  # MMLogger's console handler
    monkeypatch.setattr(sys, 'stderr', stream)  # the bar
    cfg = toy_cfg(str(tmp_path), max_iters=1, interval=1)
    cfg['default_hooks'].pop('checkpoint')
    cfg.update(
        experiment_name=f'progress_bar_{next(_ids)}', log_level='INFO',
        custom_hooks=[dict(type='ProgressBarHook')],
        test_dataloader=dict(cfg['val_dataloader'], dataset=dict(
            type='ToyRegressionDataset', length=12, seed=2)),
        test_evaluator=dict(type='ToyMSEMetric'), test_cfg=dict(type='TestLoop'))
    runner = Runner.from_cfg(Config(cfg))
    runner.val()
    runner.test()
    text = stream.getvalue()
    assert [b for b in bars(text) if b[0] == WIDTH] == [(WIDTH, 2, 2), (WIDTH, 3, 3)]
    metrics = [line for line in text.splitlines() if 'mse:' in line]
    assert len(metrics) == 2, text
    for line, mode, total in zip(metrics, ('val', 'test'), (2, 3)):
        assert re.match(r'\d\d/\d\d \d\d:\d\d:\d\d - mmengine - INFO - '
                        rf'Iter\({mode}\) \[{total}/{total}\]\s+mse: ', line), line
