# Copyright (c) cllip_mm contributors. All rights reserved.
"""tools/install.sh, in pieces: sourcing it defines its functions without running it.

Device detection (nvidia-smi, nvcc, CLLIP_DEVICE), the torch wheel index per CUDA
version, the announced / skippable apt-get, and the mmcv build command on a CUDA and a
CPU machine, with fake ``nvidia-smi`` / ``nvcc`` / ``apt-get`` / ``python`` on a PATH
that holds nothing else (the real script is never run: it builds mmcv for 10+ minutes).
"""
import os
import os.path as osp
import shutil
import subprocess

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
INSTALL = osp.join(REPO, 'tools', 'install.sh')
BASH = shutil.which('bash')
# the utilities the functions use; nothing else is on the test's PATH
UTILS = ('grep', 'sed', 'sort', 'paste', 'head', 'dirname', 'readlink', 'cat', 'nproc', 'env',
         'touch')

FAKE_PYTHON = r'''#!/bin/sh
# FAKE_TORCH_CUDA unset: no torch; empty: a CPU torch; else torch's CUDA version
case "$1" in
  */check_mmcv_ops.py)
    echo "check $*" >> "$FAKE_LOG"
    [ -e "$FAKE_STATE/mmcv_built" ] ;;
  -m)
    shift 2
    echo "pip $* | FORCE_CUDA=${FORCE_CUDA-} MMCV_WITH_OPS=${MMCV_WITH_OPS-}" \
      "TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST-} CUDA_HOME=${CUDA_HOME-}" >> "$FAKE_LOG"
    case "$*" in *mmcv==*) touch "$FAKE_STATE/mmcv_built" ;; esac ;;
  -c)
    case "$2" in
      *torch.version.cuda*) [ -n "${FAKE_TORCH_CUDA+x}" ] || exit 1; echo "$FAKE_TORCH_CUDA" ;;
      *torch.__version__*) echo 2.4.0 ;;
      *'import mmcv'*) exit 1 ;;
    esac ;;
  -) cat > /dev/null ;;
esac
'''


def script(path, text):
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, 0o755)


class Machine:
    """A fake machine: a bin folder (the whole PATH) with fakes and the utilities."""

    def __init__(self, root):
        self.root = root
        self.bin = root / 'bin'
        self.bin.mkdir()
        self.log = root / 'log'
        self.log.touch()
        self.state = root / 'state'
        self.state.mkdir()
        for name in UTILS:
            os.symlink(shutil.which(name), self.bin / name)
        script(self.bin / 'python', FAKE_PYTHON)
        script(self.bin / 'id', '#!/bin/sh\necho 0\n')

    def gpus(self, *names, compute_caps=()):
        lines = ''.join(f'GPU {i}: {n} (UUID: GPU-{i})\\n' for i, n in enumerate(names))
        caps = ''.join(f'{c}\\n' for c in compute_caps)
        script(self.bin / 'nvidia-smi',
               f'#!/bin/sh\ncase "$1" in -L) printf "{lines}";; '
               f'--query-gpu=compute_cap) printf "{caps}";; esac\n')

    def broken_driver(self):
        script(self.bin / 'nvidia-smi', '#!/bin/sh\necho "NVIDIA-SMI has failed because it '
               'could not communicate with the NVIDIA driver."\nexit 9\n')

    def toolkit(self, version):
        """A CUDA toolkit with nvcc at <root>/cuda-<version>/bin/nvcc, on PATH."""
        home = self.root / f'cuda-{version}'
        (home / 'bin').mkdir(parents=True)
        (home / 'include').mkdir()
        (home / 'include' / 'cuda_runtime.h').touch()
        script(home / 'bin' / 'nvcc', '#!/bin/sh\necho "nvcc: NVIDIA (R) Cuda compiler driver"'
               f'\necho "Cuda compilation tools, release {version}, V{version}.99"\n')
        os.symlink(home / 'bin' / 'nvcc', self.bin / 'nvcc')
        return home

    def compiler(self):
        script(self.bin / 'c++', '#!/bin/sh\n')

    def apt(self):
        script(self.bin / 'apt-get', f'#!/bin/sh\necho "APT-GET $*" >> {self.log}\n'
               'echo "APT-GET ran"\n')

    def run(self, commands, **env):
        full_env = dict(PATH=str(self.bin), HOME=str(self.root), FAKE_LOG=str(self.log),
                        FAKE_STATE=str(self.state), PYTHON=str(self.bin / 'python'),
                        DEFAULT_CUDA_HOME=str(self.root / 'no-cuda'))
        full_env.update({k: v for k, v in env.items() if v is not None})
        return subprocess.run([BASH, '-c', f'source {INSTALL}\n{commands}'],
                              env=full_env, capture_output=True, text=True, timeout=60)

    def calls(self):
        return self.log.read_text().splitlines()


@pytest.fixture
def machine(tmp_path):
    return Machine(tmp_path)


def test_bash_n_and_shellcheck():
    subprocess.run([BASH, '-n', INSTALL], check=True)
    if shutil.which('shellcheck'):
        proc = subprocess.run(['shellcheck', INSTALL], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout


def test_sourcing_runs_nothing(machine):
    proc = machine.run('echo sourced')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == 'sourced\n' and machine.calls() == []


@pytest.mark.parametrize('setup,clld_device,expected', [
    ('gpu', None, 'cuda'),
    ('gpu', 'cpu', 'cpu'),  # the override wins
    ('broken_driver', None, 'cpu'),
    ('nvcc_only', None, 'cpu'),  # a toolkit without a GPU is not a CUDA machine
    ('nvcc_only', 'cuda', 'cuda'),  # e.g. a container build
    ('nothing', None, 'cpu'),
])
def test_detect_device(machine, setup, clld_device, expected):
    if setup == 'gpu':
        machine.gpus('NVIDIA H100 80GB HBM3')
    elif setup == 'broken_driver':
        machine.broken_driver()
    elif setup == 'nvcc_only':
        machine.toolkit('12.4')
    proc = machine.run('detect_device', CLLIP_DEVICE=clld_device)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


@pytest.mark.parametrize('device,gpus,args', [('cuda', 2, '--device cuda'),
                                              ('cuda', 0, '--cuda-build-only'),
                                              ('cpu', 1, '--device cpu')])
def test_the_ops_check_runs_on_the_device(machine, device, gpus, args):
    proc = machine.run(f'set_check_args {device} {gpus}; echo "${{CHECK_ARGS[*]}}"')
    assert proc.stdout.strip() == args, proc.stderr


def test_detect_device_rejects_an_unknown_value(machine):
    proc = machine.run('detect_device', CLLIP_DEVICE='gpu')
    assert proc.returncode != 0
    assert 'CLLIP_DEVICE=gpu: use auto, cpu or cuda' in proc.stderr


@pytest.mark.parametrize('cuda,tag', [('11.8', 'cu118'), ('12.1', 'cu121'), ('12.3', 'cu121'),
                                      ('12.4', 'cu124'), ('12.5', 'cu124'), ('12.9', 'cu129'),
                                      ('13.0', 'cu130'), ('13.2', 'cu130')])
def test_torch_cuda_tag(machine, cuda, tag):
    proc = machine.run(f'torch_cuda_tag {cuda}')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == tag


@pytest.mark.parametrize('cuda', ['11.7', '10.2'])
def test_torch_cuda_tag_fails_for_an_old_toolkit(machine, cuda):
    proc = machine.run(f'torch_cuda_tag {cuda}')
    assert proc.returncode != 0 and proc.stdout == ''
    assert f'no torch wheel index for CUDA {cuda}' in proc.stderr


def test_nvcc_version_and_gpu_arch_list(machine):
    home = machine.toolkit('12.4')
    machine.gpus('A100', 'H100', 'H100', compute_caps=('9.0', '8.0', '9.0'))
    proc = machine.run('find_nvcc; nvcc_version "$(find_nvcc)"; gpu_arch_list')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(machine.bin / 'nvcc'), '12.4', '8.0;9.0']
    proc = machine.run('find_nvcc', CUDA_HOME=str(home))  # CUDA_HOME wins
    assert proc.stdout.strip() == str(home / 'bin' / 'nvcc')


def test_cuda_home_behind_a_wrapper_script(machine):
    home = machine.toolkit('12.4')
    os.unlink(machine.bin / 'nvcc')
    script(machine.bin / 'nvcc', f'#!/bin/sh\nexec {home}/bin/nvcc "$@"\n')
    # no toolkit above the wrapper: told to set CUDA_HOME
    proc = machine.run('cuda_home "$(find_nvcc)"')
    assert proc.returncode != 0 and 'set CUDA_HOME' in proc.stderr
    # the default toolkit folder, as /usr/local/cuda
    proc = machine.run('cuda_home "$(find_nvcc)"', DEFAULT_CUDA_HOME=str(home))
    assert proc.returncode == 0 and proc.stdout.strip() == str(home)


def test_apt_get_is_announced_before_it_runs(machine):
    machine.apt()
    proc = machine.run('ensure_compiler')
    assert proc.returncode == 0, proc.stderr
    announce = proc.stdout.index('about to run: apt-get update && apt-get install -y')
    assert 'CLLIP_APT=0' in proc.stdout  # how to skip it
    assert announce < proc.stdout.index('APT-GET ran')
    assert machine.calls() == ['APT-GET update -qq',
                               'APT-GET install -y -qq --no-install-recommends g++']


def test_apt_get_through_sudo_when_not_root(machine):
    machine.apt()
    script(machine.bin / 'id', '#!/bin/sh\necho 1000\n')
    script(machine.bin / 'sudo', f'#!/bin/sh\necho "SUDO $*" >> {machine.log}\n"$@"\n')
    proc = machine.run('ensure_compiler')
    assert proc.returncode == 0, proc.stderr
    assert 'about to run: sudo apt-get update && sudo apt-get install' in proc.stdout
    assert machine.calls()[0] == 'SUDO apt-get update -qq'


def test_apt_get_skipped_with_clld_apt_0(machine):
    machine.apt()
    proc = machine.run('ensure_compiler', CLLIP_APT='0')
    assert proc.returncode != 0
    assert 'CLLIP_APT=0 forbids apt-get' in proc.stderr and 'install one' in proc.stderr
    assert machine.calls() == []


def test_no_apt_get_with_a_compiler(machine):
    machine.apt()
    machine.compiler()
    assert machine.run('ensure_compiler').returncode == 0
    assert machine.calls() == []


def test_cuda_machine_builds_mmcv_with_cuda_ops_then_checks_them_on_cuda(machine):
    machine.compiler()
    machine.gpus('NVIDIA H100 80GB HBM3', compute_caps=('9.0', ))
    home = machine.toolkit('12.4')
    proc = machine.run('CHECK_ARGS=(--device cuda); install_mmcv cuda', FAKE_TORCH_CUDA='12.1')
    assert proc.returncode == 0, proc.stderr
    calls = machine.calls()
    build = [c for c in calls if 'mmcv==2.1.0' in c]
    assert len(build) == 1, calls
    assert build[0].startswith('pip install --no-build-isolation --force-reinstall --no-deps '
                               '--no-cache-dir mmcv==2.1.0')
    assert (f'FORCE_CUDA=1 MMCV_WITH_OPS=1 TORCH_CUDA_ARCH_LIST=9.0 CUDA_HOME={home}'
            in build[0])
    checks = [i for i, c in enumerate(calls) if c.startswith('check ')]
    # checked before (fails: not installed) and after the build, on the GPU
    assert len(checks) == 2 and checks[0] < calls.index(build[0]) < checks[1]
    assert calls[checks[1]].endswith('check_mmcv_ops.py --device cuda')


def test_cuda_build_without_a_gpu_hints_at_the_arch_list(machine):
    machine.compiler()
    machine.toolkit('12.4')
    proc = machine.run('CHECK_ARGS=(--cuda-build-only); install_mmcv cuda',
                       FAKE_TORCH_CUDA='12.4')
    assert proc.returncode == 0, proc.stderr
    assert 'hint: set TORCH_CUDA_ARCH_LIST' in proc.stdout
    build = [c for c in machine.calls() if 'mmcv==2.1.0' in c][0]
    assert 'FORCE_CUDA=1 MMCV_WITH_OPS=1 TORCH_CUDA_ARCH_LIST= ' in build


def test_cuda_build_refuses_a_toolkit_of_another_major_version(machine):
    machine.compiler()
    machine.gpus('NVIDIA A100')
    machine.toolkit('11.8')
    proc = machine.run('CHECK_ARGS=(--device cuda); install_mmcv cuda', FAKE_TORCH_CUDA='12.1')
    assert proc.returncode != 0
    assert 'is CUDA 11.8 but torch is built for CUDA 12.1' in proc.stderr
    assert not [c for c in machine.calls() if 'mmcv==' in c]


def test_cpu_machine_builds_mmcv_without_force_cuda(machine):
    machine.compiler()
    machine.toolkit('13.0')  # nvcc present, no GPU: still a CPU build
    proc = machine.run('CHECK_ARGS=(--device cpu); install_mmcv "$(detect_device)"',
                       FAKE_TORCH_CUDA='')
    assert proc.returncode == 0, proc.stderr
    build = [c for c in machine.calls() if 'mmcv==2.1.0' in c]
    assert len(build) == 1 and 'FORCE_CUDA= MMCV_WITH_OPS=1 ' in build[0]
    assert machine.calls()[-1].endswith('check_mmcv_ops.py --device cpu')


def test_mmcv_passing_the_check_is_not_rebuilt(machine):
    (machine.state / 'mmcv_built').touch()
    proc = machine.run('CHECK_ARGS=(--device cuda); install_mmcv cuda', FAKE_TORCH_CUDA='12.1')
    assert proc.returncode == 0, proc.stderr
    assert 'with cuda ops already installed' in proc.stdout
    assert not [c for c in machine.calls() if c.startswith('pip ')]


def test_install_fails_when_the_built_mmcv_fails_the_check(machine):
    machine.compiler()
    # the build "succeeds" but the check keeps failing
    script(machine.bin / 'python', FAKE_PYTHON.replace('touch "$FAKE_STATE/mmcv_built"', ':'))
    proc = machine.run('CHECK_ARGS=(--device cpu); install_mmcv cpu', FAKE_TORCH_CUDA='')
    assert proc.returncode != 0
    assert 'its cpu ops fail the check' in proc.stderr


def test_cpu_torch_wheel(machine):
    proc = machine.run('install_torch cpu')
    assert proc.returncode == 0, proc.stderr
    assert machine.calls() == [
        'pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu | '
        'FORCE_CUDA= MMCV_WITH_OPS= TORCH_CUDA_ARCH_LIST= CUDA_HOME=']
    machine.log.write_text('')
    proc = machine.run('install_torch cpu', FAKE_TORCH_CUDA='')  # an importable torch is kept
    assert proc.returncode == 0 and 'torch 2.4.0 already installed' in proc.stdout
    assert machine.calls() == []


def test_cuda_torch_wheel_matches_nvcc(machine):
    machine.toolkit('12.5')
    proc = machine.run('install_torch cuda')
    assert proc.returncode == 0, proc.stderr
    assert machine.calls()[0].startswith(
        'pip install torch --index-url https://download.pytorch.org/whl/cu124')
    machine.log.write_text('')
    proc = machine.run('install_torch cuda', TORCH_VERSION='2.5.1')
    assert machine.calls()[0].startswith(
        'pip install torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124')


def test_cuda_install_refuses_a_cpu_torch_and_needs_nvcc(machine):
    machine.gpus('NVIDIA H100')
    proc = machine.run('install_torch cuda', FAKE_TORCH_CUDA='')
    assert proc.returncode != 0
    assert 'is a CPU-only build, but this is a CUDA install' in proc.stderr
    assert 'pip uninstall -y torch' in proc.stderr
    proc = machine.run('install_torch cuda')  # no torch, no nvcc
    assert proc.returncode != 0 and 'needs the CUDA toolkit (nvcc)' in proc.stderr
    assert machine.calls() == []
    # an importable CUDA torch is kept
    proc = machine.run('install_torch cuda', FAKE_TORCH_CUDA='12.1')
    assert proc.returncode == 0 and 'torch 2.4.0 (CUDA 12.1) already installed' in proc.stdout
    assert machine.calls() == []
