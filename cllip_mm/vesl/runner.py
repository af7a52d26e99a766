# Copyright (c) cllip_mm contributors. All rights reserved.
"""Run VESL over the shards of an input, resumably, as one of N independent workers."""
import json
import logging
import os
import os.path as osp
import time
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Union

from mmengine.config import Config
from mmengine.logging import print_log

from .pipeline import STAGES, ImageResult, VESLPipeline
from .sources import InputShard, iter_shard, plan_shards
from .writers import ShardWriter, atomic_write, atomic_write_json, shard_done_path


def _batches(iterable, size: int):
    batch = []
    for x in iterable:
        batch.append(x)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class VESLRunner:
    """Pseudo-label ``source`` into ``out_dir`` as worker ``worker_id`` of
    ``num_workers``.

    The input is split into shards (:func:`~cllip_mm.vesl.sources.plan_shards`);
    this worker takes shards ``worker_id``, ``worker_id + num_workers``, ... and skips
    those already finished (``shards/NAME.done.json`` exists), so workers on any
    number of machines sharing ``out_dir`` need no coordination, and a killed run is
    resumed by running it again. ``plan.json`` pins the shard plan of ``out_dir``: a
    rerun on another input (or another ``shard_size``) is refused.

    When every shard is finished, the worker that sees it writes ``annotations.jsonl``
    (all records, shard order; feed it to ``RegionTextDataset`` with
    ``data_root=out_dir``), ``annotations_odvg.jsonl`` and ``report.json``. Each
    worker also writes ``reports/worker-I-of-N.json`` (its own throughput).

    Args:
        cfg (Config | dict): ``captioner``, ``phrase_extractor``, ``detector``,
            ``filters``, ``batch_size``, ``shard_size``, ``device``, ``dtype`` and
            ``output`` (``odvg``, ``tar``, ``save_images`` ('auto': only for tar
            inputs), ``merge``).
        source (str): Image folder, file list, tar file / folder / pattern.
        out_dir (str): Output directory.
        worker_id (int), num_workers (int): This worker's slice of the shards.
        progress (bool): Show a progress bar (tqdm, on stderr).
        draw_samples (int): Draw the first N images this worker labels, with their
            boxes and phrases, to ``out_dir/samples/*.png``.
    """

    def __init__(self, cfg: Union[Config, dict], source: str, out_dir: str,
                 worker_id: int = 0, num_workers: int = 1, progress: bool = True,
                 draw_samples: int = 0) -> None:
        if not 0 <= worker_id < num_workers:
            raise ValueError(f'need 0 <= worker_id < num_workers, got {worker_id}, {num_workers}')
        self.cfg = cfg if isinstance(cfg, Config) else Config(cfg)
        self.source, self.out_dir = source, out_dir
        self.worker_id, self.num_workers = worker_id, num_workers
        self.progress, self.draw_samples = progress, draw_samples
        output = dict(odvg=True, tar=False, save_images='auto', merge=True)
        output.update(self.cfg.get('output', {}))
        self.output = output
        self.batch_size = int(self.cfg.get('batch_size', 8))
        self.shard_size = int(self.cfg.get('shard_size', 1000))
        self.samples: List[ImageResult] = []

    # ------------------------------------------------------------------ plan
    def plan(self) -> List[InputShard]:
        """The shards of the input; checks (or writes) ``out_dir/plan.json``."""
        shards = plan_shards(self.source, self.shard_size, exclude=self.out_dir)
        plan = dict(source=osp.abspath(self.source), shard_size=self.shard_size,
                    labelling=self.labelling_config(), shards=[s.to_dict() for s in shards])
        os.makedirs(self.out_dir, exist_ok=True)
        path = osp.join(self.out_dir, 'plan.json')
        if osp.isfile(path):
            with open(path, encoding='utf-8') as f:
                old = json.load(f)
            if old.get('shards') != plan['shards'] or old.get('shard_size') != self.shard_size:
                raise RuntimeError(
                    f'{path}: {self.out_dir} holds VESL output of another input or shard '
                    f'size ({old.get("source")}, shard_size {old.get("shard_size")}, '
                    f'{len(old.get("shards", []))} shards); use a new output directory')
            if old.get('labelling') != plan['labelling']:
                changed = sorted(k for k in plan['labelling']
                                 if old.get('labelling', {}).get(k) != plan['labelling'][k])
                raise RuntimeError(
                    f'{path}: {self.out_dir} was labelled with other stage settings '
                    f'({", ".join(changed)} differ), so its shards would mix two '
                    'labellings; use a new output directory (or delete plan.json to '
                    'accept the mix)')
        else:
            atomic_write_json(path, plan)
        return shards

    def labelling_config(self) -> dict:
        """The settings that decide the records (stages, filters, outputs); not
        batch size, device or dtype."""
        keys = ('captioner', 'phrase_extractor', 'detector', 'filters', 'output')
        return json.loads(json.dumps({k: self.cfg.get(k) for k in keys}, default=str))

    def _save_images(self, shard: InputShard) -> bool:
        mode = self.output['save_images']
        return shard.kind == 'tar' if mode == 'auto' else bool(mode)

    # ------------------------------------------------------------------- run
    def run(self) -> dict:
        """Process this worker's unfinished shards; return the report."""
        shards = self.plan()
        mine = shards[self.worker_id::self.num_workers]
        todo = [s for s in mine if not osp.isfile(shard_done_path(self.out_dir, s.name))]
        print_log(f'VESL worker {self.worker_id}/{self.num_workers}: {len(shards)} shards, '
                  f'{len(mine)} mine, {len(mine) - len(todo)} already done',
                  logger='current', level=logging.INFO)
        run_stats, run_times = Counter(), defaultdict(float)
        start = time.perf_counter()
        load_s = process_s = 0.0
        if todo:
            pipeline = self.build_pipeline()
            load_s = time.perf_counter() - start
            bar = self._progress_bar(todo)
            for shard in todo:
                stats, times = self.run_shard(pipeline, shard, bar, run_stats)
                process_s += stats['seconds']
                for k, v in times.items():
                    run_times[k] += v
            if bar is not None:
                bar.close()
        wall = time.perf_counter() - start
        busy = max(sum(run_times.values()), 1e-9)
        this_run = dict(
            worker_id=self.worker_id, num_workers=self.num_workers,
            shards_processed=len(todo), shards_skipped=len(mine) - len(todo),
            images_in=run_stats['images_in'], images_out=run_stats['images_out'],
            wall_s=round(wall, 3), model_load_s=round(load_s, 3),
            process_s=round(process_s, 3),
            images_per_s=round(run_stats['images_in'] / process_s, 3) if process_s else None,
            time_s={k: round(run_times[k], 4) for k in STAGES + ('write', )},
            time_share={k: round(run_times[k] / busy, 4) for k in STAGES + ('write', )})
        os.makedirs(osp.join(self.out_dir, 'reports'), exist_ok=True)
        atomic_write_json(osp.join(self.out_dir, 'reports',
                                   f'worker-{self.worker_id}-of-{self.num_workers}.json'),
                          this_run)
        report = self.report(shards)
        report['this_run'] = this_run
        if report['complete']:
            if self.output['merge']:
                self.merge(shards)
            atomic_write_json(osp.join(self.out_dir, 'report.json'), report)
        if self.samples:
            from .visualization import draw_samples
            draw_samples(self.samples, osp.join(self.out_dir, 'samples'))
        return report

    def build_pipeline(self) -> VESLPipeline:
        cfg = self.cfg
        return VESLPipeline(cfg.captioner, cfg.phrase_extractor, cfg.detector,
                            cfg.get('filters', []), device=cfg.get('device', 'cpu'),
                            dtype=cfg.get('dtype', 'float32'))

    def _progress_bar(self, todo: List[InputShard]):
        if not self.progress:
            return None
        from tqdm import tqdm
        total = None if any(s.kind == 'tar' for s in todo) else sum(len(s.paths) for s in todo)
        return tqdm(total=total, unit='img', desc=f'VESL worker {self.worker_id}',
                    dynamic_ncols=True)

    def run_shard(self, pipeline: VESLPipeline, shard: InputShard, bar=None,
                  run_stats: Optional[Counter] = None):
        """Label one shard and commit its files; return its (stats, times); add
        its stats to ``run_stats``."""
        run_stats = Counter() if run_stats is None else run_stats
        stats, times = Counter(), defaultdict(float)
        shard_start = time.perf_counter()
        writer = ShardWriter(self.out_dir, shard.name, odvg=self.output['odvg'],
                             tar=self.output['tar'], save_images=self._save_images(shard))
        for batch in _batches(iter_shard(shard), self.batch_size):
            results = pipeline(batch, stats, times)
            t = time.perf_counter()
            for result in results:
                writer.add(result)
                if result.error is None:
                    stats[f'phrases_per_image/{len(result.phrases)}'] += 1
                    if len(self.samples) < self.draw_samples:
                        self.samples.append(result)
            times['write'] += time.perf_counter() - t
            if bar is not None:
                bar.update(len(batch))
                bar.set_postfix(shard=shard.name, refresh=False,
                                regions=run_stats['regions_kept'] + stats['regions_kept'],
                                failed=run_stats['images_in'] + stats['images_in']
                                - run_stats['images_out'] - stats['images_out'])
        t = time.perf_counter()
        done = dict(stats)
        done['seconds'] = round(time.perf_counter() - shard_start, 4)
        done['time_s'] = {k: round(v, 4) for k, v in times.items()}
        writer.commit(done)
        times['write'] += time.perf_counter() - t
        stats['seconds'] = time.perf_counter() - shard_start
        run_stats.update({k: v for k, v in stats.items() if k != 'seconds'})
        print_log(f'VESL shard {shard.name}: {stats["images_out"]}/{stats["images_in"]} images, '
                  f'{stats["regions_kept"]} regions, {len(writer.failed)} failed',
                  logger='current', level=logging.INFO)
        return stats, times

    # ---------------------------------------------------------------- report
    def report(self, shards: List[InputShard]) -> dict:
        """Counts summed over every finished shard (of any worker)."""
        total, times, seconds, done = Counter(), Counter(), 0.0, 0
        for shard in shards:
            path = shard_done_path(self.out_dir, shard.name)
            if not osp.isfile(path):
                continue
            with open(path, encoding='utf-8') as f:
                stats = json.load(f)
            done += 1
            seconds += stats.pop('seconds', 0.0)
            times.update(stats.pop('time_s', {}))
            stats.pop('name', None)
            stats.pop('failed', None)
            total.update(stats)
        images_out = total['images_out']

        def group(prefix: str) -> Dict[str, int]:
            return {k[len(prefix):]: v for k, v in sorted(total.items()) if k.startswith(prefix)}

        hist = {int(k): v for k, v in group('phrases_per_image/').items()}
        return dict(
            complete=done == len(shards), shards_total=len(shards), shards_done=done,
            images_in=total['images_in'], images_out=images_out,
            undecodable=total['undecodable'], errors=group('errors/'),
            captions_empty=total['captions_empty'],
            phrases_per_image=round(total['phrases'] / max(images_out, 1), 3),
            phrases_per_image_hist=dict(sorted(hist.items())),
            images_without_phrases=total['images_without_phrases'],
            phrases_dropped=group('phrases_dropped/'),
            regions_detected=total['regions_detected'], regions_kept=total['regions_kept'],
            regions_dropped=group('regions_dropped/'),
            regions_per_image=round(total['regions_kept'] / max(images_out, 1), 3),
            images_with_regions=total['images_with_regions'],
            worker_seconds=round(seconds, 3),
            images_per_worker_s=round(total['images_in'] / seconds, 3) if seconds else None,
            time_s={k: round(times[k], 3) for k in STAGES + ('write', )})

    def merge(self, shards: List[InputShard]) -> None:
        """Concatenate the shards' JSON Lines into ``annotations.jsonl`` (and
        ``annotations_odvg.jsonl``), in plan order."""
        for suffix, out in (('.jsonl', 'annotations.jsonl'),
                            ('.odvg.jsonl', 'annotations_odvg.jsonl')):
            paths = [osp.join(self.out_dir, 'shards', s.name + suffix) for s in shards]
            if not all(osp.isfile(p) for p in paths):
                continue

            def write(f, paths=paths):
                for p in paths:
                    with open(p, encoding='utf-8') as src:
                        for line in src:
                            f.write(line)

            atomic_write(osp.join(self.out_dir, out), write)
