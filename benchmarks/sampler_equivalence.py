"""Does ``ResumableInfiniteSampler`` draw the sample indices MMEngine's ``InfiniteSampler``
draws, with the same seed? (issue #26: before making the resumable pair the default of the
demo configs, whose published numbers come from ``InfiniteSampler``.)

Prints, for each world size, the first position (per rank) where the two index streams
differ, and the epoch it falls in::

    python benchmarks/sampler_equivalence.py                  # the demo: 4000 samples, seed 0
    python benchmarks/sampler_equivalence.py --size 4000 --epochs 3 --world-sizes 1 2

Result (mmengine 0.10.7): the first epoch is identical (both draw
``torch.randperm(size)`` from a generator seeded with ``seed``); from the second epoch on
the streams differ: ``InfiniteSampler`` keeps drawing permutations from that one
generator, ``ResumableInfiniteSampler`` seeds epoch ``e`` with ``seed + e`` (which is what
lets it start at any position in O(1)).
"""
import argparse
import itertools

from mmengine.dataset import InfiniteSampler

from cllip_mm.datasets import ResumableInfiniteSampler


def streams(size: int, seed: int, rank: int, world_size: int, count: int):
    """The first ``count`` indices of rank ``rank`` from both samplers."""
    dataset = range(size)
    out = []
    for cls in (InfiniteSampler, ResumableInfiniteSampler):
        sampler = cls(dataset, shuffle=True, seed=seed)
        sampler.rank, sampler.world_size = rank, world_size
        if cls is InfiniteSampler:
            sampler.indices = sampler._indices_of_rank()  # re-slice for this rank
        out.append(list(itertools.islice(iter(sampler), count)))
    return out


def compare(size: int, seed: int, epochs: int, world_size: int) -> dict:
    """First differing position per rank (None: identical over ``epochs`` epochs)."""
    count = epochs * size // world_size
    result = {}
    for rank in range(world_size):
        ours, theirs = streams(size, seed, rank, world_size, count)[::-1]
        first = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b), None)
        same = sum(a == b for a, b in zip(theirs, ours))
        result[rank] = dict(first_difference=first,
                            epoch=None if first is None else (first * world_size + rank) // size,
                            equal_positions=same, positions=count)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=4000, help='dataset size (demo: 4000)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--world-sizes', type=int, nargs='+', default=[1, 2])
    args = parser.parse_args()
    for world_size in args.world_sizes:
        for rank, r in compare(args.size, args.seed, args.epochs, world_size).items():
            verdict = 'identical' if r['first_difference'] is None else (
                f"first differs at position {r['first_difference']} (epoch {r['epoch']}); "
                f"{r['equal_positions']}/{r['positions']} positions equal")
            print(f'size {args.size}, seed {args.seed}, world size {world_size}, rank {rank}, '
                  f'{args.epochs} epochs: {verdict}')


if __name__ == '__main__':
    main()
