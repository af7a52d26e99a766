# Copyright (c) cllip_mm contributors. All rights reserved.
"""Cross-process gathering for the global contrastive losses.

Every loss of this package computes the *global* loss on every rank. The embeddings of all
ranks are gathered with :func:`torch.distributed.nn.functional.all_gather`, whose backward
sums the gradients that all ranks send to a slot, so rank ``i`` receives ``N * dL/dx_i`` for
its own ``x_i``. DDP then averages the parameter gradients over the ``N`` ranks, which gives
exactly the gradient of a one-process run on the whole batch (open_clip's
``gather_with_grad`` argument).

Without an initialised process group, or with a single process, every helper returns its
input unchanged, so the losses work locally.

The variable-size helpers are collectives: every rank must call them, also a rank with zero
rows, and in the same order.
"""
import warnings
from typing import List, Optional

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
import torch.nn.functional as F
from torch import Tensor


def is_distributed() -> bool:
    """Whether a process group with more than one process is initialised."""
    return (dist.is_available() and dist.is_initialized()
            and dist.get_world_size() > 1)


def _all_gather_autograd(tensor: Tensor) -> List[Tensor]:
    # ``torch.distributed.nn.functional.all_gather`` is deprecated in recent torch in favour
    # of the private ``_functional_collectives``; it still works on every backend (gloo
    # included), so keep it and silence only its deprecation notice.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            'ignore', message=r'torch\.distributed\.nn\.functional\.all_gather is deprecated',
            category=FutureWarning)
        return list(dist_nn.all_gather(tensor.contiguous()))


def gather_with_grad(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` [n, ...] of all ranks along dim 0, keeping gradients.

    Every rank must hold the same shape. Returns [N * n, ...], rank 0 first.
    """
    if not is_distributed():
        return tensor
    return torch.cat(_all_gather_autograd(tensor), dim=0)


def all_gather_sizes(n: int, device: torch.device) -> List[int]:
    """All ranks' values of the int ``n`` (e.g. a local count), in rank order."""
    if not is_distributed():
        return [n]
    size = torch.tensor([n], dtype=torch.long, device=device)
    sizes = [torch.empty_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    return [int(s.item()) for s in sizes]


def _pad_dim0(tensor: Tensor, length: int) -> Tensor:
    if tensor.size(0) == length:
        return tensor.contiguous()
    # F.pad pads the last dims first: (0, 0) for each trailing dim, then (0, k) for dim 0.
    pad = [0, 0] * (tensor.dim() - 1) + [0, length - tensor.size(0)]
    return F.pad(tensor, pad)


def gather_variable_with_grad(tensor: Tensor, sizes: Optional[List[int]] = None) -> Tensor:
    """Like :func:`gather_with_grad`, but ranks may hold different sizes of dim 0.

    Sizes are gathered first, each rank pads to the largest size, the padded tensors are
    gathered with gradients and the padding is sliced off again (slicing and padding are
    differentiable, so each rank gets back exactly the gradient of its own rows).

    Args:
        tensor (Tensor): [n_rank, ...]; trailing dims equal on all ranks. Floating point.
        sizes (list[int], optional): ``all_gather_sizes(tensor.size(0))`` if already known
            (saves one collective).

    Returns:
        Tensor: [sum(n_rank), ...], rank 0 first.
    """
    if not is_distributed():
        return tensor
    if sizes is None:
        sizes = all_gather_sizes(tensor.size(0), tensor.device)
    max_size = max(sizes)
    if max_size == 0:
        # Nothing to gather on any rank; the decision is the same everywhere.
        return tensor
    gathered = _all_gather_autograd(_pad_dim0(tensor, max_size))
    return torch.cat([t[:n] for t, n in zip(gathered, sizes)], dim=0)


@torch.no_grad()
def gather_variable(tensor: Tensor, sizes: Optional[List[int]] = None) -> Tensor:
    """No-grad :func:`gather_variable_with_grad`, for any dtype (e.g. int64 keys/indices)."""
    if not is_distributed():
        return tensor
    if sizes is None:
        sizes = all_gather_sizes(tensor.size(0), tensor.device)
    max_size = max(sizes)
    if max_size == 0:
        return tensor
    padded = tensor.new_zeros((max_size, ) + tuple(tensor.shape[1:]))
    padded[:tensor.size(0)] = tensor
    gathered = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(gathered, padded)
    return torch.cat([t[:n] for t, n in zip(gathered, sizes)], dim=0)


def get_rank() -> int:
    """Rank of this process; 0 without a process group."""
    return dist.get_rank() if is_distributed() else 0
