# Copyright (c) cllip_mm contributors. All rights reserved.
"""Cross-process gathering for the global contrastive losses.

The embeddings of all ranks are gathered with :func:`torch.distributed.nn.functional.all_gather`,
whose backward sums the gradients that all ranks send to a slot, so rank ``i`` receives
``sum_k dL_k/dx_i`` for its own ``x_i``. DDP then averages the parameter gradients over the
``N`` ranks. The losses come in two forms (open_clip's ``local_loss`` switch):

- global: every rank computes the whole loss ``L`` (logits [B_global, B_global]); ``L_k = L``
  and the average of ``N dL/dx`` is ``dL/dx``;
- local: rank ``k`` computes only its rows ``L_k`` (logits [B_k, B_global]), scaled so that
  ``sum_k L_k = N L``; the average of the ranks' gradients is again ``dL/dx``. Memory is linear
  in the global batch. :func:`global_value` gives ``L_k`` the value ``L`` for logging.

Both give exactly the gradient of a one-process run on the whole batch.

Process groups, ranks and fixed-size collectives come from :mod:`mmengine.dist` (which returns
its input unchanged without an initialised process group). This module adds only what it lacks:
the autograd-aware gather of a variable number of rows. It is a collective: every rank must
call it, also a rank with zero rows, and in the same order.
"""
import warnings
from typing import List, Optional

import torch
import torch.distributed.nn.functional as dist_nn
import torch.nn.functional as F
from mmengine.dist import all_gather, all_reduce, get_world_size
from torch import Tensor


def _all_gather_autograd(tensor: Tensor) -> List[Tensor]:
    # ``torch.distributed.nn.functional.all_gather`` is deprecated in recent torch in favour
    # of the private ``_functional_collectives``; it still works on every backend (gloo
    # included), so keep it and silence only its deprecation notice.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            'ignore', message=r'torch\.distributed\.nn\.functional\.all_gather is deprecated',
            category=FutureWarning)
        return list(dist_nn.all_gather(tensor.contiguous()))


def all_gather_sizes(n: int, device: torch.device) -> List[int]:
    """All ranks' values of the int ``n`` (e.g. a local count), in rank order."""
    return [int(s) for s in all_gather(torch.tensor([n], dtype=torch.long, device=device))]


def gather_variable_with_grad(tensor: Tensor, sizes: Optional[List[int]] = None) -> Tensor:
    """Concatenate ``tensor`` [n_rank, ...] of all ranks along dim 0; ranks may hold
    different ``n_rank``. Floating-point tensors keep their gradients.

    Sizes are gathered first (unless given), each rank pads to the largest size, the
    padded tensors are gathered (with autograd for floating point, with
    :func:`mmengine.dist.all_gather` for other dtypes such as int64 keys) and the padding
    is sliced off again (slicing and padding are differentiable, so each rank gets back
    exactly the gradient of its own rows).

    Args:
        tensor (Tensor): [n_rank, ...]; trailing dims and dtype equal on all ranks.
        sizes (list[int], optional): ``all_gather_sizes(tensor.size(0))`` if already known
            (saves one collective).

    Returns:
        Tensor: [sum(n_rank), ...], rank 0 first.
    """
    if get_world_size() == 1:
        return tensor
    if sizes is None:
        sizes = all_gather_sizes(tensor.size(0), tensor.device)
    max_size = max(sizes)
    if max_size == 0:
        # Nothing to gather on any rank; the decision is the same everywhere.
        return tensor
    # F.pad pads the last dims first: (0, 0) for each trailing dim, then (0, k) for dim 0.
    padded = F.pad(tensor, [0, 0] * (tensor.dim() - 1) + [0, max_size - tensor.size(0)])
    if tensor.is_floating_point():
        gathered = _all_gather_autograd(padded)
    else:
        gathered = all_gather(padded.contiguous())
    return torch.cat([t[:n] for t, n in zip(gathered, sizes)], dim=0)


def global_value(local_loss: Tensor) -> Tensor:
    """``local_loss`` (this rank's share ``L_k`` of a local-form loss, ``sum_k L_k = N L``)
    with the value of the global loss ``L`` and the gradient of ``L_k``.

    One scalar all-reduce; without a process group it returns ``local_loss``.
    """
    world_size = get_world_size()
    if world_size == 1:
        return local_loss
    total = local_loss.detach().clone()
    all_reduce(total)
    return local_loss + (total / world_size - local_loss).detach()
