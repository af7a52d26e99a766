# Copyright (c) cllip_mm contributors. All rights reserved.
"""tools/slurm_train.sh and tools/slurm_test.sh: valid bash, and what they hand to srun.

A fake ``srun`` on PATH writes its argv (NUL-separated, so an argument with a space stays
one) and the PYTHONPATH it sees; the python command line it would start must parse with
tools/train.py's / tools/test.py's own argument parser. (SLURM itself is not here.)
"""
import importlib.util
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASH = shutil.which('bash')
FAKE_SRUN = '''#!/bin/sh
printf '%s\\0' "$@" > "$SRUN_ARGV"
printf '%s' "$PYTHONPATH" > "$SRUN_ARGV.pythonpath"
'''
# options of each tool, one value with a space: each must arrive as one argument
EXTRA = {
    'train': ['--cfg-options', 'train_dataloader.batch_size=256', 'randomness.seed=1', '--amp',
              '--resume', 'my ckpts/iter_10.pth'],
    'test': ['--cfg-options', 'train_dataloader.batch_size=256', 'randomness.seed=1',
             '--out', 'my preds/out.pkl'],
}


def run_script(tmp_path, name, args, **env):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    srun = bin_dir / 'srun'
    srun.write_text(FAKE_SRUN)
    srun.chmod(0o755)
    argv_file = tmp_path / 'argv'
    full_env = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
                    SRUN_ARGV=str(argv_file), PYTHONPATH='/site/extra')
    full_env.update(env)
    proc = subprocess.run([BASH, osp.join(REPO, 'tools', name), *args], env=full_env,
                          capture_output=True, text=True, timeout=60)
    argv = argv_file.read_bytes().decode().split('\0')[:-1] if argv_file.exists() else None
    return proc, argv, tmp_path


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f'tool_{name}',
                                                  osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('name', ['slurm_train.sh', 'slurm_test.sh'])
def test_bash_n_and_shellcheck(name):
    path = osp.join(REPO, 'tools', name)
    subprocess.run([BASH, '-n', path], check=True)
    assert os.access(path, os.X_OK), f'{name} is not executable'
    if shutil.which('shellcheck'):
        proc = subprocess.run(['shellcheck', path], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize('name,tool,fourth', [('slurm_train.sh', 'train', 'work_dirs/x'),
                                              ('slurm_test.sh', 'test', 'ckpt.pth')])
def test_srun_gets_the_layout_and_the_tool_its_arguments(tmp_path, monkeypatch, name, tool,
                                                         fourth):
    extra = EXTRA[tool]
    proc, argv, _ = run_script(tmp_path, name, ['gpu-part', 'cloc-b16', 'configs/x.py', fourth,
                                                *extra],
                               GPUS='16', GPUS_PER_NODE='8', CPUS_PER_TASK='6',
                               SRUN_ARGS='--quotatype=auto --time=2-00:00:00')
    assert proc.returncode == 0, proc.stderr
    python = argv.index('python')
    assert argv[:python] == ['-p', 'gpu-part', '--job-name=cloc-b16', '--gres=gpu:8',
                             '--ntasks=16', '--ntasks-per-node=8', '--cpus-per-task=6',
                             '--kill-on-bad-exit=1', '--quotatype=auto', '--time=2-00:00:00']
    assert argv[python + 1] == '-u'
    assert osp.realpath(argv[python + 2]) == osp.join(REPO, 'tools', f'{tool}.py')
    tool_args = argv[python + 3:]
    if tool == 'train':
        assert tool_args == ['configs/x.py', '--work-dir=work_dirs/x', '--launcher=slurm', *extra]
    else:
        assert tool_args == ['configs/x.py', 'ckpt.pth', '--launcher=slurm', *extra]
    # the repository first on the path, the caller's kept
    pythonpath = (tmp_path / 'argv.pythonpath').read_text().split(os.pathsep)
    assert osp.realpath(pythonpath[0]) == REPO and pythonpath[1] == '/site/extra'
    # what srun would start parses with the tool's own parser
    monkeypatch.setattr(sys, 'argv', [f'{tool}.py', *tool_args])
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    args = load_tool(tool).parse_args()
    assert args.launcher == 'slurm' and args.config == 'configs/x.py'
    assert args.cfg_options == {'train_dataloader.batch_size': 256, 'randomness.seed': 1}
    if tool == 'train':
        assert args.work_dir == fourth and args.amp and args.resume == 'my ckpts/iter_10.pth'
    else:
        assert args.checkpoint == fourth and args.out == 'my preds/out.pkl'


def test_defaults_are_one_node_of_8_gpus(tmp_path):
    proc, argv, _ = run_script(tmp_path, 'slurm_train.sh', ['p', 'j', 'c.py', 'w'],
                               PYTHON='python3')
    assert proc.returncode == 0, proc.stderr
    assert '--ntasks=8' in argv and '--ntasks-per-node=8' in argv and '--gres=gpu:8' in argv
    assert '--cpus-per-task=5' in argv and argv[argv.index('python3') + 1] == '-u'
    assert argv[-2:] == ['--work-dir=w', '--launcher=slurm']  # nothing appended


@pytest.mark.parametrize('name', ['slurm_train.sh', 'slurm_test.sh'])
def test_too_few_arguments_print_the_usage(tmp_path, name):
    proc, argv, _ = run_script(tmp_path, name, ['p', 'j', 'c.py'])
    assert proc.returncode == 2 and 'usage:' in proc.stderr
    assert argv is None  # srun never ran
