# Copyright (c) cllip_mm contributors. All rights reserved.
"""Multi-process training and testing without CUDA (``--launcher pytorch`` on CPU),
and bounded, explained exits when a process of a distributed run fails."""
import gc
import os
import sys
import traceback
from contextlib import contextmanager
from datetime import timedelta
from typing import Iterator

import torch
import torch.distributed as torch_dist
from mmengine.config import Config

#: Default timeout (seconds) of every collective, as ``env_cfg.dist_cfg.timeout``.
DEFAULT_TIMEOUT_S = 1800

# Messages of gloo / NCCL / c10d errors caused by another process.
_PEER_FAILURE_HINTS = ('connection closed by peer', 'connection reset', 'timed out',
                       'timeout', 'broken pipe', 'nccl', 'gloo', 'socket')


def setup_cpu_distributed(cfg: Config) -> None:
    """Make ``--launcher pytorch`` work on a machine without CUDA.

    MMEngine 0.10.7 cannot run distributed on CPU: its ``init_dist`` calls
    ``torch.cuda.set_device`` and its default DDP wrapper passes
    ``device_ids=[LOCAL_RANK]``. Without CUDA this initialises the default process
    group with ``gloo`` from the ``env://`` variables torchrun sets (the Runner then
    skips ``init_dist``) and defaults ``cfg.model_wrapper_cfg`` to
    ``MMDistributedDataParallel`` with ``device_ids=None``. With CUDA, or another
    launcher, it does nothing.

    Args:
        cfg (Config): The full config; ``cfg.launcher`` must already be set. Reads
            ``env_cfg.dist_cfg.timeout`` (seconds) and ``find_unused_parameters``.
    """
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return
    if not torch_dist.is_initialized():
        dist_cfg = cfg.get('env_cfg', {}).get('dist_cfg', {})
        timeout = dist_cfg.get('timeout', DEFAULT_TIMEOUT_S)
        torch_dist.init_process_group(backend='gloo', timeout=timedelta(seconds=timeout))
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))


def teardown_distributed() -> None:
    """Free DDP's reducer, then destroy the default process group.

    Call it at the end of an entry point, after dropping the runner. Left to interpreter
    exit, gloo's process group and DDP's reducer can be destroyed in the wrong order and
    the process aborts (``terminate called without an active exception``, SIGABRT) after
    a successful run.
    """
    gc.collect()
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


def is_peer_failure(error: BaseException) -> bool:
    """Whether ``error`` looks like a failed collective (a peer died or hung)."""
    dist_error = getattr(torch_dist, 'DistError', None)
    if dist_error is not None and isinstance(error, dist_error):
        return True
    return isinstance(error, RuntimeError) and any(
        hint in str(error).lower() for hint in _PEER_FAILURE_HINTS)


@contextmanager
def exit_promptly_on_distributed_failure(tool: str, timeout_s: float) -> Iterator[None]:
    """In a distributed run, turn any exception into a clear message and an immediate
    ``os._exit(1)``.

    When one process dies, gloo / NCCL raise in the others at their next collective
    (at once when the peer's sockets close, else after the process group's timeout,
    ``env_cfg.dist_cfg.timeout``). Unwinding normally could then block in the
    destructors of DDP, the process group or dataloader workers; and a process that
    fails on its own (a bad record, a full disk) should free its peers at once.
    Outside a distributed run (no process group, or one process) exceptions pass.

    Args:
        tool (str): Named in the message, e.g. ``'tools/train.py'``.
        timeout_s (float): The collectives' timeout, named in the message.
    """
    try:
        yield
    except BaseException as error:
        if isinstance(error, SystemExit) and not error.code:
            raise
        if not (torch_dist.is_available() and torch_dist.is_initialized()
                and torch_dist.get_world_size() > 1):
            raise
        rank, world_size = torch_dist.get_rank(), torch_dist.get_world_size()
        traceback.print_exc()
        if is_peer_failure(error):
            why = ('a collective operation with the other processes failed: another '
                   'process probably died (see its log) or did not answer within the '
                   f'process-group timeout (env_cfg.dist_cfg.timeout={timeout_s:g} s)')
        else:
            why = 'this process failed; the other processes stop at their next collective'
        print(f'[rank {rank}/{world_size}] {tool} stopped: {type(error).__name__}: '
              f'{error}\n[rank {rank}/{world_size}] {why}. Exiting now (exit code 1).',
              file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(1)


def dist_timeout(cfg: Config) -> float:
    """``env_cfg.dist_cfg.timeout`` of ``cfg`` in seconds (1800 by default)."""
    return float(cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout', DEFAULT_TIMEOUT_S))
