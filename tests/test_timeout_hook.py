"""The per-test timeout of tests/conftest.py: a test past its limit fails (it does not
wait), in Python code and in a subprocess it waits on."""
import os.path as osp
import subprocess
import sys
import textwrap

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_pytest(tmp_path, body, *extra):
    test = tmp_path / 'test_hang.py'
    test.write_text(textwrap.dedent(body))
    # the repository's conftest and ini, on a test file outside the repository
    conftest = tmp_path / 'conftest.py'
    conftest.write_text(open(osp.join(REPO, 'tests', 'conftest.py')).read())
    return subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                           '-c', osp.join(REPO, 'pytest.ini'), '--rootdir', str(tmp_path),
                           str(test), *extra], capture_output=True, text=True, timeout=120,
                          cwd=str(tmp_path))


def test_a_hung_test_fails_at_its_limit(tmp_path):
    """Broken variant checked: with the SIGALRM handler not installed (``usable = False``)
    the run waits on the sleeps and the subprocess.run timeout fails this test."""
    proc = run_pytest(tmp_path, '''
        import subprocess, sys, time
        import pytest

        @pytest.mark.timeout(1)
        def test_sleeps():
            time.sleep(60)

        @pytest.mark.timeout(1)
        def test_waits_on_a_child():
            subprocess.run([sys.executable, '-c', 'import time; time.sleep(60)'])

        def test_command_line_limit():
            time.sleep(60)

        def test_quick():
            pass
    ''', '--test-timeout', '2')
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert '3 failed, 1 passed' in proc.stdout
    assert 'ran past its 1 s limit' in proc.stdout and 'ran past its 2 s limit' in proc.stdout


def test_strict_markers(tmp_path):
    proc = run_pytest(tmp_path, '''
        import pytest

        @pytest.mark.slwo
        def test_typo():
            pass
    ''')
    assert proc.returncode != 0 and "'slwo' not found in `markers`" in proc.stdout + proc.stderr
