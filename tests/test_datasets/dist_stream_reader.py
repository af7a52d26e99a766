# Copyright (c) cllip_mm contributors. All rights reserved.
"""What one rank of the multi-process stream tests runs (a module of its own, so that
``torch.multiprocessing``'s spawned processes can import it).

Each rank is a real process that joins a gloo process group the way ``torchrun`` and
MMEngine's ``init_dist('pytorch')`` do (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT`` in the environment, ``env://`` initialisation), so
``RegionTextShardStream`` finds its rank and world size through ``mmengine.dist`` and
draws its seed with ``sync_random_seed`` (a broadcast from rank 0).
"""
import json
import os
import os.path as osp
import time


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def read_rank(rank: int, world_size: int, port: int, out_dir: str, dataset: dict,
              num_samples: int, num_workers: int, batch_size: int) -> None:
    """Read ``num_samples`` samples of the stream ``dataset`` on rank ``rank`` through
    a DataLoader of ``num_workers`` workers; write ``[(sample_idx, state), ...]`` to
    ``out_dir/rank{rank}.json``."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    import torch.distributed as dist
    from mmengine.dist import get_dist_info
    from torch.utils.data import DataLoader

    from cllip_mm.registry import DATASETS
    from cllip_mm.utils import register_all_modules
    dist.init_process_group('gloo', init_method='env://')
    try:
        assert get_dist_info() == (rank, world_size)
        register_all_modules()
        ds = DATASETS.build(dataset)
        assert (ds.rank, ds.world_size) == (rank, world_size)
        loader = DataLoader(ds, batch_size=batch_size, num_workers=num_workers,
                            collate_fn=list)  # a batch: the list of samples
        out = []
        for batch in loader:
            out += [(s['sample_idx'], json.loads(s['_stream_state'])) for s in batch]
            if len(out) >= num_samples:
                break
        with open(osp.join(out_dir, f'rank{rank}.json'), 'w') as f:
            json.dump(dict(samples=out[:num_samples], seed=ds.seed), f)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ranks(world_size: int, out_dir: str, dataset: dict, num_samples: int,
              num_workers: int = 2, batch_size: int = 3, timeout: float = 600) -> list:
    """Spawn ``world_size`` processes running :func:`read_rank`; wait at most
    ``timeout`` seconds, then kill them and raise ``TimeoutError`` (never hang).
    Returns the per-rank results."""
    import torch.multiprocessing as mp
    ctx = mp.start_processes(
        read_rank, args=(world_size, free_port(), out_dir, dataset, num_samples,
                         num_workers, batch_size),
        nprocs=world_size, join=False, start_method='spawn')
    deadline = time.monotonic() + timeout
    try:
        # join() raises ProcessRaisedException / ProcessExitedException on a failure
        while not ctx.join(timeout=max(1.0, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                raise TimeoutError(f'{world_size} reader processes did not finish in '
                                   f'{timeout:.0f} s')
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
                p.join(5)
    return [json.load(open(osp.join(out_dir, f'rank{r}.json'))) for r in range(world_size)]
