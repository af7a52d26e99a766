# Copyright (c) cllip_mm contributors. All rights reserved.
"""Multi-process training and testing without CUDA (``--launcher pytorch`` on CPU)."""
import gc
from datetime import timedelta

import torch
import torch.distributed as torch_dist
from mmengine.config import Config


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
        timeout = dist_cfg.get('timeout', 1800)
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
