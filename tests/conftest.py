"""Shared fixtures: a tiny synthetic region-text set and a tiny CLOC config on it; the
per-test timeout (``test_timeout`` in pytest.ini, ``@pytest.mark.timeout(s)``)."""
import faulthandler
import os
import os.path as osp
import signal
import sys
import threading

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(REPO, 'configs/cloc/cloc_vit-tiny-p8_1xb64-1200it_synthetic.py')


# ------------------------------------------- config pretty-printing, once per text
# MMEngine's Runner formats its config with yapf up to 5 times per run (logged at start,
# dumped to the work dir, stored by RuntimeInfoHook, again by test()): 16 s a call for a
# full-size Grounding DINO config on this CPU, half of such a test. yapf's FormatCode is a
# pure function of (source, style), so the suite keeps each answer: the dumped and logged
# text is unchanged (tests/test_conftest_format_cache.py).
@pytest.fixture(autouse=True, scope='session')
def _format_each_config_text_once():
    import functools

    import mmengine.config.config as mmengine_config

    original = mmengine_config.FormatCode

    @functools.lru_cache(maxsize=64)
    def cached(text, style_items):
        return original(text, style_config=dict(style_items))

    def format_code(text, style_config=None, **kwargs):
        if kwargs or not isinstance(style_config, dict):
            return original(text, style_config=style_config, **kwargs)
        return cached(text, tuple(sorted(style_config.items())))

    format_code.cache_info = cached.cache_info
    mmengine_config.FormatCode = format_code
    yield
    mmengine_config.FormatCode = original


# ------------------------------------------------------------------ per-test timeout
# No plugin: SIGALRM raises in the test (subprocess.run then kills its child), and,
# for a test stuck in C code where no Python signal handler runs (a collective that
# never returns), faulthandler prints every thread's stack and exits GRACE s later.
GRACE = 60


class TestTimeout(Exception):
    """A test ran past its limit (``test_timeout`` / ``@pytest.mark.timeout``)."""


def pytest_addoption(parser):
    parser.addini('test_timeout', 'per-test limit (s) of each of setup / call / teardown; '
                  '0: none', default='0')
    parser.addoption('--test-timeout', type=float, default=None,
                     help='per-test limit (s) in place of the test_timeout ini value; 0: none')


def _limit(item) -> float:
    marker = item.get_closest_marker('timeout')
    if marker is not None:
        return float(marker.args[0])
    option = item.config.getoption('--test-timeout')
    return float(item.config.getini('test_timeout') if option is None else option)


def _armed_phase(item, phase):
    limit = _limit(item)
    usable = (limit > 0 and hasattr(signal, 'SIGALRM')
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise TestTimeout(f'{item.nodeid}: {phase} ran past its {limit:g} s limit')

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    faulthandler.dump_traceback_later(limit + GRACE, exit=True, file=sys.stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------ markers
#: What a test that starts several processes calls (its own source): marked ``dist``.
DIST_CALLS = ('run_in_processes', 'torch.distributed.run', 'nproc_per_node', 'dist_train.sh',
              'dist_test.sh', 'dist_benchmark.sh')


# -------------------------------------------- pytest-xdist: one share of the cores each
def pytest_configure(config):
    """Under ``pytest -n N`` each worker (and every process it starts: tools/train.py,
    torchrun, spawned gloo ranks) gets cores / N threads, not torch's default of all cores,
    so N workers do not start N x cores threads (docs/testing.md has what was measured)."""
    workers = os.environ.get('PYTEST_XDIST_WORKER_COUNT')
    if workers:
        threads = str(max(1, (os.cpu_count() or 1) // int(workers)))
        os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = threads
        import torch
        torch.set_num_threads(int(threads))


def pytest_collection_modifyitems(config, items):
    """Mark ``dist`` the tests that start several processes (found by what they call),
    wherever they live, so that ``-m "not dist"`` leaves them all out."""
    import inspect
    sources = {}
    for item in items:
        function = getattr(item, 'function', None)
        if function is None or item.get_closest_marker('dist') is not None:
            continue
        if function not in sources:
            try:
                sources[function] = inspect.getsource(function)
            except (OSError, TypeError):
                sources[function] = ''
        if any(call in sources[function] for call in DIST_CALLS):
            item.add_marker(pytest.mark.dist)
    if os.environ.get('PYTEST_XDIST_WORKER'):
        items[:] = heaviest_modules_first(items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``pytest -n N`` sends whole modules to a worker (their module fixtures are built
    once), in the order :func:`heaviest_modules_first` gives: xdist's ``--dist loadscope``
    without its reordering by test count. An explicit ``--dist`` other than ``load`` (what
    ``-n`` alone implies) is left to xdist."""
    if config.getoption('dist') != 'load':
        return None
    from xdist.scheduler import LoadScopeScheduling
    config.option.loadscopereorder = False
    return LoadScopeScheduling(config, log)


def heaviest_modules_first(items):
    """Under ``-n N`` (:func:`pytest_xdist_make_scheduler`) each module goes to one worker,
    in this order: the modules with the most ``slow`` tests first, so the long ones start
    early instead of leaving one worker busy at the end. Order inside a module, and between
    modules of equal weight, is kept (every worker sorts the same way)."""
    module = [item.nodeid.split('::')[0] for item in items]
    weight, first = {}, {}
    for i, (name, item) in enumerate(zip(module, items)):
        weight[name] = weight.get(name, 0) + (item.get_closest_marker('slow') is not None)
        first.setdefault(name, i)
    order = sorted(range(len(items)), key=lambda i: (-weight[module[i]], first[module[i]], i))
    return [items[i] for i in order]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    yield from _armed_phase(item, 'setup')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield from _armed_phase(item, 'call')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    yield from _armed_phase(item, 'teardown')


@pytest.fixture(scope='session')
def tiny_region_set(tmp_path_factory):
    """A seeded synthetic set (real JPEG files + JSON Lines + tokenizer.json)."""
    from cllip_mm.datasets.synthetic import generate_synthetic_regions
    root = str(tmp_path_factory.mktemp('tiny_region_set'))
    generate_synthetic_regions(root, num_train=48, num_val=16, seed=3, min_size=48, max_size=64)
    return root


def tiny_cloc_cfg(data_root: str, work_dir: str, max_iters: int = 4, clip_only: bool = False):
    """The demo config shrunk to seconds: 32 px, 1 block of width 32, batch 8."""
    from mmengine.config import Config
    cfg = Config.fromfile(DEMO_CONFIG)
    data_root = data_root.rstrip('/') + '/'
    cfg.work_dir = work_dir
    cfg.model.tokenizer.path = osp.join(data_root, 'tokenizer')
    cfg.model.image_encoder.update(img_size=32, width=32, layers=1, heads=2, embed_dim=16)
    cfg.model.text_encoder.update(width=32, layers=1, heads=2, embed_dim=16)
    cfg.model.prompter.update(width=32, embed_dim=16, heads=2)
    cfg.model.grounding_head.update(width=32, embed_dim=16)
    if clip_only:
        cfg.model.update(prompter=None, grounding_head=None, region_loss=None,
                         grounding_loss=None, region_embed_mode='crop')
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.update(batch_size=8, num_workers=0, persistent_workers=False)
        loader.dataset.data_root = data_root
    for pipeline in (cfg.train_dataloader.dataset.pipeline, cfg.val_dataloader.dataset.pipeline):
        for step in pipeline:
            if step['type'] == 'RandomResizedCropWithRegions':
                step['size'] = (32, 32)
            if step['type'] == 'Resize':
                step['scale'] = (32, 32)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.update(max_iters=max_iters, val_interval=max_iters)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)]
    cfg.default_hooks.checkpoint.update(interval=2, max_keep_ckpts=3)
    cfg.default_hooks.logger.interval = 1
    return cfg


@pytest.fixture
def make_tiny_cloc_cfg(tiny_region_set, tmp_path):
    def make(**kwargs):
        return tiny_cloc_cfg(tiny_region_set, str(tmp_path / 'work_dir'), **kwargs)
    return make


@pytest.fixture(scope='session')
def tiny_cloc_checkpoint(tiny_region_set, tmp_path_factory):
    """The tiny CLOC as a config file + an MMEngine checkpoint of random weights.

    Every parameter gets seeded noise on top of its initialisation, so that no
    zero-initialised layer makes outputs equal across boxes or texts.
    Returns (config path, checkpoint path).
    """
    import torch

    from cllip_mm.registry import MODELS
    from cllip_mm.utils import register_all_modules
    register_all_modules()
    work_dir = tmp_path_factory.mktemp('tiny_cloc_checkpoint')
    cfg = tiny_cloc_cfg(tiny_region_set, str(work_dir))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    cfg_path, ckpt_path = osp.join(work_dir, 'tiny_cloc.py'), osp.join(work_dir, 'tiny_cloc.pth')
    cfg.dump(cfg_path)
    # like MMEngine's CheckpointHook, the config travels in meta['cfg']
    torch.save({'state_dict': model.state_dict(), 'meta': {'cfg': cfg.pretty_text}}, ckpt_path)
    return cfg_path, ckpt_path


@pytest.fixture(scope='session')
def tiny_cloc_cfg_factory():
    """:func:`tiny_cloc_cfg` itself, for fixtures of a wider scope than ``tmp_path``
    (``from conftest import`` is ambiguous: other test folders have a conftest too)."""
    return tiny_cloc_cfg
