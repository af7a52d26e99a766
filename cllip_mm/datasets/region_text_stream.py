# Copyright (c) cllip_mm contributors. All rights reserved.
"""Region-text samples streamed from webdataset-style tar shards, resumable in O(1)."""
import json
import logging
import os.path as osp
import tarfile
from collections import Counter
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
from mmengine.dataset import Compose
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.logging import print_log
from torch.utils.data import IterableDataset, get_worker_info

from cllip_mm.engine.resume import SAMPLE_STATE_KEY, ResumableStream, encode_sample_state
from cllip_mm.registry import DATASETS
from .odvg import build_odvg_converter, is_odvg_record
from .records import BadRecordError, RecordParser
from .tar_shards import expand_shards, iter_tar_samples

IMAGE_EXTS = ('jpg', 'jpeg', 'png', 'webp')
#: source picks drawn at once when sources mix by weight (see ``_source_picker``)
WEIGHTED_PICK_BLOCK = 1024
#: shards named in the error of a reader that reads no sample (the others are counted)
NAMED_DRY_SHARDS = 10
#: default ``max_dry_shards``: shards opened in a row without a sample before a reader fails
MAX_DRY_SHARDS = 100
#: what ``len()`` reports without ``num_samples``: a stream has no length, MMEngine asks one
UNBOUNDED_LEN = 2**40

# Seed domains: every generator of the stream is seeded with ``[seed, DOMAIN, ...]``, so
# that two kinds of draw never share a generator when their other entries coincide. The
# values are fixed (renumbering one changes every draw of that kind, and a resumed run
# would no longer continue the interrupted one).
#: ``mode='resampled'``: the ``j``-th shard drawn by a reader
SEED_SHARD_DRAW = 1
#: the order of the samples within a shuffle block
SEED_BLOCK_SHUFFLE = 2
#: ``mode='epoch'``: the order of a source's shards in an epoch
SEED_SHARD_ORDER = 3
#: the source of each sample, sources mixed by weight
SEED_WEIGHTED_PICKS = 7
#: the source of each sample, sources mixed by ``samples_per_epoch``
SEED_COUNTED_PICKS = 8


def grit_to_record(meta: dict, image: str) -> dict:
    """An img2dataset GRIT json (``caption``, ``ref_exps`` of ``[start, end, x1, y1, x2,
    y2, score]`` with boxes normalised to [0, 1], ``width``, ``height``) as a region-text
    record (boxes in pixels of the stored image)."""
    w, h, caption = meta.get('width'), meta.get('height'), meta.get('caption')
    regions = []
    for ref in meta.get('ref_exps') or []:
        s, e, x1, y1, x2, y2 = ref[:6]
        regions.append(dict(bbox=[x1 * w, y1 * h, x2 * w, y2 * h],
                            phrase=caption[int(s):int(e)],
                            score=ref[6] if len(ref) > 6 else 1.0))
    return dict(image=image, width=w, height=h, caption=caption, regions=regions)


class _SourceCursor:
    """The samples of one source seen by one global worker, as an infinite iterator of
    ``(shard, key, files), state``.

    Epoch mode: epoch ``e`` orders the shards by a permutation seeded by ``(seed,
    source, e)`` (the same on every rank and worker) and worker ``g`` of ``G`` reads
    shards ``g, g + G, ...`` of it. Resampled mode: the ``j``-th shard of worker ``g``
    is drawn uniformly with the seed ``(seed, source, g, j)``. Shuffling is by blocks:
    ``block_size`` consecutive samples are read, permuted with the seed ``(seed,
    source, g, epoch, block)`` and yielded. The state after a sample, ``[epoch, j,
    offset, block, taken]``, names the block's first sample (shard ``j`` of the
    sequence, byte ``offset``) and how many of the block were yielded, so a reader
    resumes by reading one block again: O(block_size), whatever the position.

    A reader that opens ``max_dry_shards`` shards in a row without reading a sample from
    them (missing, unreadable or empty files) raises ``RuntimeError`` naming them: in
    ``mode='epoch'`` it would otherwise go through its empty share of every epoch
    forever, and the dataloader, which returns batches in worker order, wait for it.
    ``who`` (e.g. ``'rank 0, dataloader worker 1'``) and ``spec`` (the source's shards
    as given) are for that message.
    """

    def __init__(self, shards: List[str], index: int, mode: str, shuffle: bool, seed: int,
                 g: int, num_global: int, block_size: int, stats: Counter,
                 max_dry_shards: int = MAX_DRY_SHARDS, who: str = '',
                 spec: Any = None) -> None:
        self.shards, self.index, self.mode, self.shuffle = shards, index, mode, shuffle
        self.seed, self.g, self.num_global = seed, g, num_global
        self.block_size, self.stats = block_size, stats
        self.max_dry_shards, self.who, self.spec = max_dry_shards, who, spec
        self._order: Tuple[int, Optional[np.ndarray]] = (-1, None)
        #: (shard, why) of the shards opened since the last one that gave a sample
        self._dry: List[Tuple[str, str]] = []

    def shard_at(self, epoch: int, j: int) -> Optional[str]:
        if self.mode == 'resampled':
            rng = np.random.default_rng([self.seed, SEED_SHARD_DRAW, self.index, self.g, j])
            return self.shards[int(rng.integers(len(self.shards)))]
        if self._order[0] != epoch:
            n = len(self.shards)
            order = np.random.default_rng(
                [self.seed, SEED_SHARD_ORDER, self.index, epoch]).permutation(n) \
                if self.shuffle else np.arange(n)
            self._order = (epoch, order)
        i = self.g + j * self.num_global
        return self.shards[self._order[1][i]] if i < len(self.shards) else None

    def _read_block(self, epoch: int, j: int, offset: int):
        """Up to ``block_size`` samples from shard ``j`` of ``epoch``'s sequence, byte
        ``offset``, on: ``(items, j, offset)``, the last two the position after them. No
        items: this reader's shards of the epoch are done (``mode='epoch'``)."""
        items: List[tuple] = []
        while len(items) < self.block_size:
            path = self.shard_at(epoch, j)
            if path is None:
                break
            before, why = len(items), 'no sample in it'
            try:
                for key, files, _, end in iter_tar_samples(path, offset):
                    items.append((path, key, files))
                    offset = end
                    if len(items) == self.block_size:
                        break
                else:
                    j, offset = j + 1, 0
            except (tarfile.TarError, OSError, EOFError) as e:
                self.stats['corrupt shard'] += 1
                print_log(f'RegionTextShardStream: skipped the rest of shard {path} '
                          f'({type(e).__name__}: {e})', logger='current',
                          level=logging.WARNING)
                j, offset = j + 1, 0
                why = f'{type(e).__name__}: {e}'
            if len(items) > before:
                self._dry.clear()
            else:
                self._dry.append((path, why))
                if len(self._dry) >= self.max_dry_shards:
                    raise RuntimeError(self._dry_message())
        return items, j, offset

    def _dry_message(self) -> str:
        """The error of a reader whose last ``max_dry_shards`` shards gave no sample."""
        last: Dict[str, str] = {}
        for path, why in self._dry:  # each distinct shard with its last reason, in order
            last.pop(path, None)
            last[path] = why
        named = [f'{p} ({why})' for p, why in list(last.items())[:NAMED_DRY_SHARDS]]
        more = len(last) - len(named)
        return (f'RegionTextShardStream: reader {self.g} of {self.num_global} ({self.who}) '
                f'read no sample from the last {len(self._dry)} shards it opened '
                f'({len(last)} distinct) of source {self.index} ({self.spec!r}, '
                f'{len(self.shards)} shards, mode={self.mode!r}): '
                + '; '.join(named) + (f'; and {more} more' if more else '')
                + '. Check the shard pattern, that the files are there (a mounted file '
                'system?) and that they are readable tar files.')

    def __call__(self, state: Optional[list]) -> Iterator[Tuple[tuple, list]]:
        epoch, j, offset, block, taken = state or (0, 0, 0, 0, 0)
        while True:
            items, j2, offset2 = self._read_block(epoch, j, offset)
            if not items:  # this worker's shards of the epoch are done
                epoch, j, offset, block, taken = epoch + 1, 0, 0, 0, 0
                continue
            order = np.random.default_rng(
                [self.seed, SEED_BLOCK_SHUFFLE, self.index, self.g, epoch, block]
            ).permutation(len(items)) if self.shuffle else np.arange(len(items))
            for t in range(taken, len(items)):
                yield items[order[t]], [epoch, j, offset, block, t + 1]
            j, offset, block, taken = j2, offset2, block + 1, 0


@DATASETS.register_module()
class RegionTextShardStream(IterableDataset, ResumableStream):
    """Region-text samples from webdataset-style tar shards (img2dataset layout).

    A sample is ``KEY.jpg`` (or png / webp) + ``KEY.json``; the JSON is a region-text
    record (``caption``, ``width``, ``height``, ``regions``; ``image`` optional), an
    ODVG record, or an img2dataset GRIT record (``caption`` + ``ref_exps``), validated
    by the record checks of :class:`~cllip_mm.datasets.RegionTextDataset`
    (:class:`~cllip_mm.datasets.records.RecordParser`). Bad samples (unreadable image,
    image size not the record's, bad JSON, invalid record, corrupt shard) are skipped,
    counted per reason in :attr:`skip_counts` (per worker process) and logged.

    Splitting: with ``W`` ranks of ``N`` dataloader workers there are ``G = W * N``
    global workers; in ``mode='epoch'`` every epoch's shards are shared out among them
    (each shard read by exactly one global worker per epoch; needs at least ``G``
    shards per source), in ``mode='resampled'`` every global worker draws shards with
    replacement, forever. Several sources mix by weight or by exact per-epoch sample
    counts (``samples_per_epoch``, as mmdet's ``CustomSampleSizeSampler`` for map-style
    data). Shuffling
    is by blocks of ``block_size`` consecutive samples (see :class:`_SourceCursor`).

    Resume: a :class:`~cllip_mm.engine.resume.ResumableStream`. Every sample carries its
    worker's stream state after it (``'_stream_state'``,
    :data:`~cllip_mm.engine.resume.SAMPLE_STATE_KEY`: ``worker``, ``n`` samples read and
    one ``[epoch, j, offset, block, taken]`` or None per source, as JSON);
    :class:`~cllip_mm.engine.ResumableIterBasedTrainLoop` keeps the last
    state of each worker, the checkpoint stores them, and :meth:`load_state_dict` starts
    each worker right after its last trained sample (same ranks, workers and batch
    size), re-reading at most one block per source.

    Args:
        sources (str | list): Shards of one source (a brace pattern such as
            ``'shards/{00000..00099}.tar'`` or a list of them), or a list of dicts
            ``dict(shards=..., weight=1.0)`` (each sample picks its source with
            probability proportional to the weight) or ``dict(shards=...,
            samples_per_epoch=m)`` (exactly m samples of the source in every mixing
            epoch of sum(m) samples; see :meth:`_source_picker`).
        pipeline (list): Transforms after decoding (the image is already in
            ``results['img']``: no loading step).
        data_root (str): Root of relative shard paths.
        mode (str): ``'epoch'`` (each sample once per epoch) or ``'resampled'``.
        shuffle (bool): Shuffle shards and blocks. Defaults to True.
        block_size (int): Samples per shuffle block (memory: that many encoded
            samples per source and worker).
        seed (int, optional): None draws one, synchronised across ranks.
        min_score, label_map_file, caption_policy: As in
            :class:`~cllip_mm.datasets.RegionTextDataset`.
        num_samples (int, optional): What ``len()`` reports (MMEngine asks the length
            of the train dataloader to convert epoch-based schedules; the stream itself
            is infinite). Defaults to a very large number.
        max_dry_shards (int): A reader (one dataloader worker of one rank) that opens
            this many shards in a row without reading a sample from them (missing,
            unreadable or empty) raises ``RuntimeError`` naming them, in either mode, so
            that a wrong pattern or a missing mount ends reading in bounded time (in
            ``mode='epoch'`` it would otherwise cycle through empty epochs forever). A few
            unreadable shards among readable ones are skipped. Defaults to
            :data:`MAX_DRY_SHARDS` (100).

    Raises:
        FileNotFoundError: When built, if none of a source's shards exists (checked
            up to the first that does).
    """

    def __init__(self,
                 sources: Union[str, Sequence],
                 pipeline: Sequence = (),
                 data_root: str = '',
                 mode: str = 'epoch',
                 shuffle: bool = True,
                 block_size: int = 256,
                 seed: Optional[int] = None,
                 min_score: Optional[float] = None,
                 label_map_file: Optional[str] = None,
                 caption_policy: Optional[dict] = None,
                 num_samples: Optional[int] = None,
                 max_dry_shards: int = MAX_DRY_SHARDS) -> None:
        self.num_samples = num_samples
        if max_dry_shards < 1:
            raise ValueError(f'max_dry_shards must be >= 1, got {max_dry_shards}')
        self.max_dry_shards = max_dry_shards
        if mode not in ('epoch', 'resampled'):
            raise ValueError(f"mode must be 'epoch' or 'resampled', got {mode!r}")
        if block_size < 1:
            raise ValueError(f'block_size must be >= 1, got {block_size}')
        if isinstance(sources, str) or (sources and not isinstance(sources[0], dict)):
            sources = [dict(shards=sources)]
        self.sources = []
        counted = [src.get('samples_per_epoch') is not None for src in sources]
        if any(counted) and not all(counted):
            raise ValueError('RegionTextShardStream: give samples_per_epoch for every source '
                             f'or for none (given for sources {np.flatnonzero(counted).tolist()})')
        for i, src in enumerate(sources):
            shards = expand_shards(src['shards'], data_root)
            if not shards:
                raise ValueError(f'source {i} has no shards: {src["shards"]!r}')
            if not any(osp.exists(p) for p in shards):  # stops at the first that exists
                raise FileNotFoundError(
                    f'RegionTextShardStream: none of the {len(shards)} shards of source {i} '
                    f'({src["shards"]!r}, data_root {data_root!r}) exists, e.g. '
                    f'{", ".join(shards[:3])}: check the pattern and the mount')
            if counted[i]:
                if 'weight' in src:
                    raise ValueError(f'source {i}: give weight or samples_per_epoch, not both')
                count = src['samples_per_epoch']
                if not (isinstance(count, int) and count > 0):
                    raise ValueError(f'source {i}: samples_per_epoch must be a positive '
                                     f'integer, got {count!r}')
                weight = float(count)
            else:
                weight = float(src.get('weight', 1.0))
                if not weight > 0:
                    raise ValueError(f'source {i}: weight must be > 0, got {weight}')
            self.sources.append(dict(shards=shards, weight=weight, spec=src['shards']))
        weights = np.array([s['weight'] for s in self.sources])
        self.probs = weights / weights.sum()
        #: exact per-epoch sample counts of the sources (None: mix by weight)
        self.samples_per_epoch = [int(w) for w in weights] if all(counted) else None
        self.mode, self.shuffle, self.block_size = mode, shuffle, block_size
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.rank, self.world_size = get_dist_info()
        self.pipeline = Compose(pipeline)
        #: the record checks (bad records and regions go to :meth:`_bad_record`)
        self.parser = RecordParser(
            self._bad_record, min_score=min_score,
            converter=build_odvg_converter(label_map_file, caption_policy, data_root))
        self.skip_counts: Counter = Counter()
        #: global worker -> state, set by load_state_dict
        self.resume_states: Dict[int, dict] = {}
        self._resume_num_workers = 0
        #: checkpoint state handed over by SamplerStateHook, applied by the train loop
        self.pending_state: Optional[dict] = None
        #: workers are renumbered by this offset on resume (round-robin order)
        self.worker_offset = 0
        self.metainfo: dict = dict()

    def __len__(self) -> int:
        return self.num_samples if self.num_samples is not None else UNBOUNDED_LEN

    # ------------------------------------------------------------------ resume
    def load_state_dict(self, state: dict) -> None:
        """Start every global worker after its last trained sample.

        ``state``: ``dict(states={global worker: stream state}, num_batches=k,
        num_workers=N, world_size=W, seed=...)`` as saved by the train loop.
        """
        if state['world_size'] != self.world_size:
            raise ValueError(f'RegionTextShardStream: cannot resume a stream of '
                             f'{state["world_size"]} ranks on {self.world_size}')
        self.seed = int(state['seed'])
        self.resume_states = {int(g): s for g, s in state['states'].items()}
        # the next batch of the uninterrupted run comes from worker k mod N
        self.worker_offset = int(state['num_batches']) % int(state['num_workers'])
        self._resume_num_workers = int(state['num_workers'])

    # ------------------------------------------------------------------ reading
    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        wid, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if self.resume_states and num_workers != self._resume_num_workers:
            raise ValueError(f'RegionTextShardStream: resuming needs the same number '
                             f'of dataloader workers ({self._resume_num_workers}), '
                             f'got {num_workers}')
        logical = (wid + self.worker_offset) % num_workers
        num_global = self.world_size * num_workers
        g = self.rank * num_workers + logical
        if self.mode == 'epoch':
            for i, src in enumerate(self.sources):
                if len(src['shards']) < num_global:
                    raise ValueError(
                        f'RegionTextShardStream: source {i} has {len(src["shards"])} '
                        f'shards, fewer than the {num_global} readers (ranks x workers) '
                        f"that mode='epoch' shares them among; write more shards or "
                        f"use mode='resampled'")
        state = self.resume_states.get(g) or dict(n=0, sources=[None] * len(self.sources))
        who = f'rank {self.rank}, ' + (f'dataloader worker {wid}' if info is not None
                                       else 'no dataloader worker')
        cursors = [_SourceCursor(src['shards'], i, self.mode, self.shuffle, self.seed, g,
                                 num_global, self.block_size, self.skip_counts,
                                 self.max_dry_shards, who, src['spec'])(state['sources'][i])
                   for i, src in enumerate(self.sources)]
        n, src_states = state['n'], list(state['sources'])
        pick = self._source_picker(g, num_global)
        while True:
            s = pick(n)
            (shard, key, files), src_states[s] = next(cursors[s])
            n += 1
            results = self._decode(shard, key, files)
            if results is not None:
                results = self.pipeline(results)
                if results is None:
                    self._skip('pipeline returned None', f'skipped sample {shard}:{key}')
            if results is None:
                continue
            results[SAMPLE_STATE_KEY] = encode_sample_state(
                dict(worker=g, n=n, sources=src_states))
            yield results

    def _source_picker(self, g: int, num_global: int) -> Callable[[int], int]:
        """The source of reader ``g``'s sample number ``n``, a function of ``(seed, g, n)``
        only (so a resumed reader picks as the uninterrupted one did).

        The picks come in blocks, each drawn by a generator seeded with the block's index
        (one generator per block, not per sample: seeding one costs ~40 us). By weight:
        blocks of :data:`WEIGHTED_PICK_BLOCK` independent draws. By ``samples_per_epoch``
        (m_i, M = sum): the M source labels of a mixing epoch, sorted by source, are dealt
        out to the G readers (reader g takes labels g, g + G, ...), and a block is the
        reader's share in a fresh seeded order. When M is a multiple of G, every M samples
        the readers draw together (each reader's M / G) hold exactly m_i of source i.
        """
        if len(self.sources) == 1:
            return lambda n: 0
        if self.samples_per_epoch is None:
            size = WEIGHTED_PICK_BLOCK

            def block(b: int) -> np.ndarray:
                return np.random.default_rng([self.seed, SEED_WEIGHTED_PICKS, g, b]).choice(
                    len(self.sources), size=size, p=self.probs)
        else:
            total = sum(self.samples_per_epoch)
            labels = np.repeat(np.arange(len(self.sources)), self.samples_per_epoch)
            labels = labels[g::num_global]
            if len(labels) == 0:
                raise ValueError(f'RegionTextShardStream: samples_per_epoch sums to {total}, '
                                 f'fewer than the {num_global} readers (ranks x workers)')
            if total % num_global:
                print_log(f'RegionTextShardStream: samples_per_epoch sums to {total}, not a '
                          f'multiple of the {num_global} readers: each reader\'s share is '
                          f'exact, the global counts per epoch are within +-{num_global} '
                          f'of them', logger='current', level=logging.WARNING)
            size = len(labels)

            def block(b: int) -> np.ndarray:
                return np.random.default_rng([self.seed, SEED_COUNTED_PICKS, g, b]).permutation(labels)
        cache: Dict[int, np.ndarray] = {}

        def pick(n: int) -> int:
            b, i = divmod(n, size)
            if b not in cache:
                cache.clear()
                cache[b] = block(b)
            return int(cache[b][i])
        return pick

    def _skip(self, reason: str, message: str) -> None:
        """Count a skip under ``reason`` and log ``message`` (naming shard and key)."""
        self.skip_counts[reason] += 1
        print_log(f'RegionTextShardStream: {message} ({reason}); '
                  f'{sum(self.skip_counts.values())} skipped so far in this process',
                  logger='current', level=logging.WARNING)

    def _bad_record(self, error: BadRecordError) -> None:
        """A bad record (the sample is skipped) or region (dropped) found by the
        parser; its message names ``shard:key``, the field and the image."""
        what = 'sample' if error.level == 'record' else 'a region of sample'
        self._skip(f'bad {error.level}: {error.reason}', f'skipped {what} {error}')

    def _decode(self, shard: str, key: str, files: Dict[str, bytes]) -> Optional[dict]:
        """The checked data info and decoded image of one sample, or None (skipped:
        counted and logged)."""
        for ext in IMAGE_EXTS:
            if ext in files:
                break
        else:
            ext = None
        if ext is None or 'json' not in files:
            self._skip('missing image or json',
                       f'skipped sample {shard}:{key}: has {sorted(files)}')
            return None
        try:
            raw = json.loads(files['json'])
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            self._skip('invalid JSON', f'skipped sample {shard}:{key}: field `json`: {e}')
            return None
        image = f'{osp.basename(key)}.{ext}'
        if isinstance(raw, dict) and 'ref_exps' in raw and 'regions' not in raw:
            raw = grit_to_record(raw, image)
        elif isinstance(raw, dict) and 'filename' not in raw:
            raw.setdefault('image', image)
        # the format (region-text or ODVG) is decided per record
        info = self.parser.parse(raw, shard, key, convert=is_odvg_record(raw))
        if info is None:
            return None
        where = f'{shard}:{key}'
        try:
            img = mmcv.imfrombytes(files[ext], flag='color', channel_order='bgr')
        except Exception as e:  # any decoder failure
            img, error = None, e
        else:
            error = None
        if img is None:
            self._skip('unreadable image', f'skipped sample {where}: field `{ext}`'
                       + (f': {error}' if error else ''))
            return None
        if img.shape[:2] != (info['height'], info['width']):
            self._skip('image size mismatch', f'skipped sample {where}: field '
                       f'`width`/`height`: image {img.shape[1]}x{img.shape[0]}, record '
                       f'{info["width"]}x{info["height"]}')
            return None
        info.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2],
                    img_path=where, sample_idx=f'{osp.basename(shard)}/{key}',
                    ann_file=shard, ann_line=key, on_bad_record='skip')
        return info
