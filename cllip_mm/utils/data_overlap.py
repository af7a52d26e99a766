# Copyright (c) cllip_mm contributors. All rights reserved.
"""Does a model's training data overlap an evaluation set?

``tools/benchmark.py`` reads the training data a checkpoint shows (the training config
MMEngine stores as ``meta['cfg']``: its ``train_dataloader.dataset``) and warns when it
overlaps the evaluated set (docs/benchmarks.md, "Data leakage"):

- the same annotation file, or image folders that are the same or one inside the other;
- known overlaps between public sets, found by the file and folder names: LVIS v1 val
  images come from COCO train2017 (and val2017); Karpathy's COCO test images come from
  COCO val2014, which COCO train2017 contains; COCO / LVIS boxes labelled with their
  category names make COCO / LVIS region classification no longer zero-shot; a GRIT
  evaluation sample can overlap GRIT training data.

Paths are compared as written in the configs (``data_root`` joined), resolved when they
exist here, and otherwise by their last components (``coco/annotations/x.json``), since
the checkpoint may come from another machine. These are warnings: a name-based rule can
be wrong either way.
"""
import logging
import os.path as osp
from typing import Any, Iterator, List, Mapping, NamedTuple, Optional, Tuple

from mmengine.logging import print_log


class DataPaths(NamedTuple):
    """Where a dataset config reads from (``data_root`` joined, normalised).

    Attributes:
        ann_files (tuple[str]): Annotation files (and tar shard patterns).
        image_roots (tuple[str]): Image folders (``data_prefix`` values; the folders of
            shards).
    """
    ann_files: Tuple[str, ...] = ()
    image_roots: Tuple[str, ...] = ()

    def all(self) -> Tuple[str, ...]:
        return self.ann_files + self.image_roots


def _norm(path: str) -> str:
    return osp.normpath(path) if path else ''


def _join(root: str, path: str) -> str:
    return _norm(osp.join(root or '', path or '')) if (root or path) else ''


def _walk(cfg: Any) -> Iterator[Tuple[str, str]]:
    """``('ann', path)`` / ``('img', path)`` of every dataset in a (nested) config."""
    if isinstance(cfg, (list, tuple)):
        for item in cfg:
            yield from _walk(item)
        return
    if not isinstance(cfg, Mapping):
        return
    root = cfg.get('data_root') or ''
    if isinstance(cfg.get('ann_file'), str) and cfg['ann_file']:
        yield 'ann', _join(root, cfg['ann_file'])
    prefix = cfg.get('data_prefix', cfg.get('img_prefix'))
    if isinstance(prefix, str):
        yield 'img', _join(root, prefix)
    elif isinstance(prefix, Mapping):
        for value in prefix.values():
            if isinstance(value, str):
                yield 'img', _join(root, value)
    sources = cfg.get('sources')  # RegionTextShardStream: patterns, or dicts of them
    if sources is not None:
        for src in [sources] if isinstance(sources, (str, Mapping)) else sources:
            shards = src.get('shards') if isinstance(src, Mapping) else src
            for pattern in [shards] if isinstance(shards, str) else (shards or []):
                if isinstance(pattern, str):
                    yield 'ann', _join(root, pattern)
                    yield 'img', _norm(osp.dirname(_join(root, pattern)))
    for key, value in cfg.items():
        if key not in ('pipeline', 'sources') and isinstance(value, (Mapping, list, tuple)):
            yield from _walk(value)


def dataset_paths(dataset_cfg: Any) -> DataPaths:
    """The annotation files and image folders a dataset config (wrappers such as
    ``ConcatDataset`` and streams of tar shards included) reads. A dataset without
    ``data_prefix`` names no image folder (its records name the images)."""
    ann, img = [], []
    for kind, path in _walk(dataset_cfg):
        if path not in ('', '.'):  # nothing to compare (relative to an unknown cwd)
            (ann if kind == 'ann' else img).append(path)
    return DataPaths(tuple(dict.fromkeys(ann)), tuple(dict.fromkeys(img)))


def training_paths(checkpoint: Mapping) -> Optional[DataPaths]:
    """The training data of a loaded MMEngine checkpoint, read from ``meta['cfg']`` (the
    config text MMEngine's ``Runner`` stores); None when it has no readable one."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, Mapping) else None
    text = meta.get('cfg') if isinstance(meta, Mapping) else None
    if not text:
        return None
    if isinstance(text, str):
        from mmengine.config import Config
        try:
            cfg = Config.fromstring(text, file_format='.py')
        except Exception as e:  # a config this machine cannot parse
            print_log(f"the checkpoint's training config (meta['cfg']) could not be read "
                      f'({type(e).__name__}: {e}): training / evaluation data overlap '
                      'not checked', logger='current', level=logging.WARNING)
            return None
    else:
        cfg = text
    loader = cfg.get('train_dataloader') if hasattr(cfg, 'get') else None  # Config, dict
    if not isinstance(loader, Mapping) or loader.get('dataset') is None:
        return None
    return dataset_paths(loader['dataset'])


def _parts(path: str) -> List[str]:
    return [p for p in _norm(path).replace('\\', '/').split('/') if p not in ('', '.')]


def _real(path: str) -> Optional[str]:
    return osp.realpath(path) if path and osp.exists(path) else None


def _same(a: str, b: str, tail: int) -> bool:
    """The same file / folder: equal paths, equal resolved paths (both exist here), or
    (written on another machine) the same last ``tail`` components (at least 2)."""
    if not a or not b:
        return False
    if _norm(a) == _norm(b):
        return True
    ra, rb = _real(a), _real(b)
    if ra and rb:
        return ra == rb
    pa, pb = _parts(a), _parts(b)
    k = min(tail, len(pa), len(pb))
    return k >= 2 and pa[-k:] == pb[-k:]


def _inside(a: str, b: str) -> bool:
    """Folder ``a`` is ``b`` or inside it (or the other way round)."""
    if _same(a, b, 2):
        return True
    ra, rb = _real(a) or osp.abspath(a), _real(b) or osp.abspath(b)
    return ra.startswith(rb.rstrip('/') + '/') or rb.startswith(ra.rstrip('/') + '/')


def _any(paths, *words: str) -> List[str]:
    """The paths whose lower-cased text holds every one of ``words``."""
    return [p for p in paths if all(w in p.lower() for w in words)]


def overlaps(train: DataPaths, evaluated: DataPaths) -> List[str]:
    """Reasons (sentences naming the paths) why ``evaluated`` may not be held out from
    ``train``; empty when none is found."""
    reasons = []
    for e in evaluated.ann_files:
        for t in train.ann_files:
            if _same(t, e, 3):
                reasons.append(f'the training data reads the evaluated annotation file '
                               f'({t} / {e})')
    for e in evaluated.image_roots:
        for t in train.image_roots:
            if _inside(t, e):
                reasons.append(f'the training images ({t}) and the evaluated ones ({e}) are '
                               'in the same folder (or one holds the other): check that the '
                               'splits are disjoint')
    coco_train = _any(train.all(), 'train2017')
    if coco_train and _any(evaluated.ann_files, 'lvis', 'val'):
        reasons.append('LVIS v1 val images come from COCO train2017 (and val2017), and the '
                       f'training data uses COCO train2017 ({coco_train[0]})')
    if coco_train and _any(evaluated.ann_files, 'dataset_coco'):
        reasons.append("Karpathy's COCO test images are COCO val2014 images, which COCO "
                       f'train2017 holds, and the training data uses it ({coco_train[0]})')
    # region classification of COCO / LVIS: were their boxes, labelled with the category
    # names that are the classes here, in the training data?
    for family, evaluated_words, trained_words in (
            ('COCO', ('coco', 'instances_'), ('coco', 'train')),
            ('LVIS', ('lvis', ), ('lvis', ))):
        evaluated_family = _any(evaluated.ann_files, *evaluated_words)
        trained = [p for p in _any(train.ann_files, *trained_words)
                   if not any(_same(p, e, 3) for e in evaluated_family)]
        if evaluated_family and trained:
            reasons.append(f'the training data holds {family} annotations ({trained[0]}): if '
                           f'their region texts include {family} category names (the '
                           f'classes of {family} region classification), that benchmark is '
                           'no longer zero-shot')
    grit_eval, grit_train = _any(evaluated.all(), 'grit'), _any(train.all(), 'grit')
    if grit_eval and grit_train:
        reasons.append(f'the GRIT evaluation sample ({grit_eval[0]}) can overlap the GRIT '
                       f'training data ({grit_train[0]}): GRIT has no published held-out '
                       'split')
    return list(dict.fromkeys(reasons))


def warn_data_overlap(checkpoint: Mapping, name: str, eval_dataset_cfg: Any,
                      task: str) -> List[str]:
    """Log a warning for each overlap between the training data of ``checkpoint`` (a
    loaded checkpoint named ``name``) and the evaluated dataset config of ``task``.

    Returns:
        list[str]: The reasons (empty: none found, or no training config to read).
    """
    train = training_paths(checkpoint)
    if train is None:
        print_log(f"{name}: no training config (meta['cfg'] with a train_dataloader): "
                  f'cannot check that {task} is held out from its training data',
                  logger='current', level=logging.INFO)
        return []
    reasons = overlaps(train, dataset_paths(eval_dataset_cfg))
    for reason in reasons:
        print_log(f'{task}: possible training / evaluation overlap for {name}: {reason} '
                  '(docs/benchmarks.md, "Data leakage")', logger='current',
                  level=logging.WARNING)
    return reasons
