# Copyright (c) cllip_mm contributors. All rights reserved.
"""Run a test function in several gloo processes without hanging the test suite.

Every multi-process test in ``tests/`` goes through :func:`run_in_processes`::

    from dist_utils import run_in_processes

    def _worker(rank, world_size, out_dir):   # module level: spawn pickles it by name
        ...                                   # the gloo process group is ready here

    def test_something(tmp_path):
        run_in_processes(_worker, args=(str(tmp_path), ), tmp_dir=tmp_path)

What it guards against (a full run once hung in such a test):

- *port races*: the processes meet through a :class:`torch.distributed.FileStore` in a
  fresh file, not a TCP port chosen by binding port 0 and closing it again (another
  process can take the port in between);
- *state inherited by fork* (thread pools, locks, process groups, registries of the
  parent): children are started with ``spawn``, so they begin from a clean interpreter;
- *a collective that never returns*: the process group has a ``timeout``, so a
  collective that waits for a dead or diverged peer raises instead of blocking;
- *a child that never exits*: :func:`run_in_processes` waits at most ``join_timeout``
  seconds, then kills the children and fails the test with a message that says which
  ranks were still running;
- *exit-time deadlocks*: DDP reducers and other objects holding the group are
  collected before ``destroy_process_group``.

Tools launched as separate programs (``tools/train.py --launcher pytorch``) meet
through ``env://`` instead: :func:`rendezvous_env` gives them a store that this process
serves on a port the OS picked while binding it (what torchrun's agent does), and
torchrun itself is run with ``--standalone`` (``PORT=0`` for ``tools/dist_*.sh``).

This file is on ``sys.path`` because ``tests/conftest.py`` is (pytest's default
``prepend`` import mode), and spawned children inherit the parent's ``sys.path``.
"""
import contextlib
import gc
import os.path as osp
import tempfile
import time
from datetime import timedelta
from typing import Callable, Dict, Iterator, Optional, Sequence

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

#: seconds a collective may wait for the other processes before it raises
COLLECTIVE_TIMEOUT = 60
#: seconds the parent waits for all children to finish (spawned children import torch,
#: mmengine and cllip_mm again: minutes on a loaded 2-core machine)
JOIN_TIMEOUT = 900


def _entry(rank: int, fn: Callable, world_size: int, store_file: str,
           collective_timeout: float, args: tuple) -> None:
    """Child process: join the gloo group, run ``fn(rank, world_size, *args)``, leave."""
    import torch
    torch.set_num_threads(1)  # N processes on a few cores: no oversubscription
    store = dist.FileStore(store_file, world_size)
    dist.init_process_group('gloo', store=store, rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=collective_timeout))
    open(f'{store_file}.joined{rank}', 'w').close()  # for the parent's timeout message
    try:
        fn(rank, world_size, *args)
    finally:
        # free DDP reducers etc. while the group lives (destroying it at interpreter
        # exit can deadlock in ~ProcessGroupGloo)
        gc.collect()
        dist.destroy_process_group()


def run_in_processes(fn: Callable,
                     args: Sequence = (),
                     world_size: int = 2,
                     tmp_dir: Optional[str] = None,
                     collective_timeout: float = COLLECTIVE_TIMEOUT,
                     join_timeout: float = JOIN_TIMEOUT) -> None:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` spawned processes that
    share a gloo process group.

    Args:
        fn (callable): A module-level function (pickled by name for ``spawn``).
        args (sequence): Further arguments, picklable.
        world_size (int): Number of processes.
        tmp_dir (str, optional): Where the rendezvous file goes (e.g. pytest's
            ``tmp_path``); a fresh temporary directory when None.
        collective_timeout (float): Timeout (s) of the process group's collectives.
        join_timeout (float): Seconds to wait for all processes to finish.

    Raises:
        torch.multiprocessing.ProcessRaisedException: A child raised (its traceback
            is in the message); the other children are terminated.
        pytest.fail: The children did not finish within ``join_timeout``.
    """
    with tempfile.TemporaryDirectory(dir=None if tmp_dir is None else str(tmp_dir)) as root:
        store_file = osp.join(root, 'filestore')
        context = mp.start_processes(
            _entry, args=(fn, world_size, store_file, collective_timeout, tuple(args)),
            nprocs=world_size, join=False, start_method='spawn')
        deadline = time.monotonic() + join_timeout
        try:
            while not context.join(timeout=max(0.0, min(5.0, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    running = [rank for rank, process in enumerate(context.processes)
                               if process.is_alive()]
                    joined = [rank for rank in running
                              if osp.exists(f'{store_file}.joined{rank}')]
                    pytest.fail(
                        f'{getattr(fn, "__qualname__", fn)}: ranks {running} of '
                        f'{world_size} still running after {join_timeout:.0f} s; of '
                        f'these, ranks {joined} had joined the process group (a '
                        'collective waiting for a peer, or a process that does not '
                        'exit), the others were still starting; all were killed',
                        pytrace=False)
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
                    process.join(5)


@contextlib.contextmanager
def rendezvous_env(world_size: int) -> Iterator[Dict[str, str]]:
    """Environment for ``world_size`` programs that each call
    ``init_process_group`` with ``env://`` (e.g. ``tools/train.py --launcher pytorch``
    started without torchrun), each with its own ``RANK``.

    This process serves their TCP store on a port the OS picks while binding it, so no
    other process can take the port between choosing and binding it; the programs
    connect as clients (``TORCHELASTIC_USE_AGENT_STORE``, as under torchrun). Keep the
    context open until they have exited.
    """
    store = dist.TCPStore('127.0.0.1', 0, world_size, is_master=True,
                          wait_for_workers=False)
    try:
        yield dict(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(store.port),
                   TORCHELASTIC_USE_AGENT_STORE='True')
    finally:
        del store
