# Copyright (c) cllip_mm contributors. All rights reserved.
"""Output of one VESL shard, committed atomically.

Layout under the output directory ``OUT`` for shard ``NAME``:

- ``shards/NAME.jsonl``: region-text records (the format of
  :class:`~cllip_mm.datasets.RegionTextDataset`, paths relative to ``OUT``), plus
  ``key`` and ``source`` of the input image;
- ``shards/NAME.odvg.jsonl`` (``odvg=True``): the same as MMDetection ODVG grounding
  lines (``tokens_positive`` = the phrase's span in the caption);
- ``shards/NAME.tar`` (``tar=True``): webdataset shard, ``KEY.EXT`` (the input
  bytes) + ``KEY.json`` (the record, ``image`` = ``KEY.EXT``);
- ``images/NAME/KEY.EXT`` (``save_images=True``): the input bytes, for inputs that
  are not loose files (tar shards);
- ``shards/NAME.done.json``: the shard's counts, written last: a shard is finished
  if and only if this file exists.

Every file is written to ``*.tmp-PID`` and renamed into place (``os.replace``, by
:mod:`cllip_mm.utils.atomic_files`), so a killed process leaves no partial output under
a final name; a rerun removes the stale temporaries of the shard it redoes and
overwrites any files of the shard renamed before the kill, so no record is ever written
twice.
"""
import glob
import io
import json
import os
import os.path as osp
import shutil
import tarfile
from typing import List, Optional

from cllip_mm.utils.atomic_files import atomic_write, atomic_write_json, commit_file, tmp_suffix
from .pipeline import ImageResult

#: Failed images listed by name in a shard's ``done.json`` (the rest are counted).
MAX_LISTED_FAILURES = 1000


def shard_done_path(out_dir: str, name: str) -> str:
    return osp.join(out_dir, 'shards', f'{name}.done.json')


class ShardWriter:
    """Collect the records of shard ``name`` and commit its files.

    Args:
        out_dir (str): The output directory ``OUT``.
        name (str): The shard name.
        odvg (bool): Also write ODVG grounding lines.
        tar (bool): Also write a webdataset tar shard.
        save_images (bool): Copy the input image bytes under ``OUT/images/NAME/``
            (records then point there instead of at the input files).
    """

    def __init__(self, out_dir: str, name: str, odvg: bool = True, tar: bool = False,
                 save_images: bool = False) -> None:
        self.out_dir, self.name = out_dir, name
        self.odvg, self.tar, self.save_images = odvg, tar, save_images
        self.suffix = tmp_suffix()
        self.records: List[dict] = []
        self.odvg_lines: List[dict] = []
        self.failed: List[dict] = []
        os.makedirs(osp.join(out_dir, 'shards'), exist_ok=True)
        self._remove_stale()
        self.images_dir = osp.join(out_dir, 'images', name)
        self._tar = None
        if tar:
            self._tar_path = osp.join(out_dir, 'shards', f'{name}.tar')
            self._tar = tarfile.open(self._tar_path + self.suffix, 'w')
        if save_images:
            os.makedirs(self.images_dir + self.suffix)

    def _remove_stale(self) -> None:
        """Temporaries of this shard left by a killed process."""
        pattern = glob.escape(osp.join(self.out_dir, 'shards', self.name)) + '.*.tmp-*'
        for path in glob.glob(pattern):
            os.remove(path)
        for path in glob.glob(glob.escape(osp.join(self.out_dir, 'images', self.name))
                              + '.tmp-*'):
            shutil.rmtree(path)

    def add(self, result: ImageResult) -> Optional[dict]:
        """Add an image's record (or its failure); return the record."""
        item = result.item
        if result.error is not None:
            if len(self.failed) < MAX_LISTED_FAILURES:
                self.failed.append(dict(key=item.key, source=item.source, stage=result.error[0],
                                        error=result.error[1][:500]))
            return None
        width, height = result.image.size
        if self.save_images:
            image = f'images/{self.name}/{item.key}{item.ext}'
            with open(osp.join(self.images_dir + self.suffix, item.key + item.ext), 'wb') as f:
                f.write(item.data)
        else:
            image = osp.relpath(osp.abspath(item.path), osp.abspath(self.out_dir))
            image = image.replace(os.sep, '/')
        bboxes = [[round(float(v), 2) for v in box] for box in result.regions.bboxes.tolist()]
        scores = [round(float(s), 4) for s in result.regions.scores.tolist()]
        labels = result.regions.labels.tolist()
        record = dict(
            image=image, width=width, height=height, caption=result.caption,
            regions=[dict(bbox=b, phrase=result.phrases[label].text, score=s)
                     for b, s, label in zip(bboxes, scores, labels)],
            key=item.key, source=item.source)
        self.records.append(record)
        if self.odvg:
            self.odvg_lines.append(dict(
                filename=image, height=height, width=width,
                grounding=dict(caption=result.caption, regions=[
                    dict(bbox=b, phrase=result.phrases[label].text,
                         tokens_positive=[list(result.phrases[label].span)])
                    for b, label in zip(bboxes, labels)])))
        if self._tar is not None:
            tar_record = dict(record, image=item.key + item.ext)
            self._add_to_tar(item.key + item.ext, item.data)
            self._add_to_tar(item.key + '.json', json.dumps(tar_record).encode('utf-8'))
        return record

    def _add_to_tar(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        self._tar.addfile(info, io.BytesIO(data))

    def commit(self, stats: dict) -> None:
        """Rename every file of the shard into place, ``done.json`` last."""
        shards = osp.join(self.out_dir, 'shards')

        def jsonl(lines):
            return lambda f: f.writelines(json.dumps(line) + '\n' for line in lines)

        if self.save_images:
            if osp.isdir(self.images_dir):  # from a run killed before its done.json
                shutil.rmtree(self.images_dir)
            os.replace(self.images_dir + self.suffix, self.images_dir)
        if self._tar is not None:
            self._tar.close()
            commit_file(self._tar_path + self.suffix, self._tar_path)
        if self.odvg:
            atomic_write(osp.join(shards, f'{self.name}.odvg.jsonl'), jsonl(self.odvg_lines))
        atomic_write(osp.join(shards, f'{self.name}.jsonl'), jsonl(self.records))
        atomic_write_json(shard_done_path(self.out_dir, self.name),
                          dict(stats, name=self.name, failed=self.failed))
