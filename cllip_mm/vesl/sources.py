# Copyright (c) cllip_mm contributors. All rights reserved.
"""VESL inputs: an image folder, a file list or tar shards, split into shards.

A shard is the unit of work and of output: ``plan_shards`` lists them in a fixed
order (so every process computes the same plan) and ``iter_shard`` yields its
:class:`InputItem` s.

- **folder**: every image file under it (recursive, sorted), ``shard_size`` per
  shard; a sidecar ``NAME.txt`` holds a caption, ``NAME.json`` metadata.
- **file list** (``.txt`` / ``.lst``): one image path per line (relative to the list's
  directory), optionally followed by a tab and a caption.
- **tar shards** (img2dataset / webdataset layout: ``KEY.jpg`` + ``KEY.json``
  [+ ``KEY.txt``]): a ``.tar`` file, a folder of them, a glob or a brace range
  (``shards/{00000..00099}.tar``); one output shard per tar.
"""
import glob
import io
import json
import os
import os.path as osp
import re
import tarfile
from typing import Iterator, List, NamedTuple, Optional

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.webp', '.bmp')
_KEY_UNSAFE = re.compile(r'[^A-Za-z0-9_-]')


class InputItem(NamedTuple):
    """One input image: ``key`` (unique in its shard, no dots), ``ext`` ('.jpg', ...),
    the encoded ``data``, ``meta`` (caption etc.), ``source`` (file path, or
    ``tar:member`` for messages) and ``path`` (the file on disk, None in a tar)."""
    key: str
    ext: str
    data: Optional[bytes]
    meta: dict
    source: str
    path: Optional[str]


class InputShard(NamedTuple):
    """``name`` of the output shard; ``kind`` ``'files'`` or ``'tar'``; ``paths``:
    the image files (with ``captions``, ``None`` when absent) or the tar file."""
    name: str
    kind: str
    paths: List[str]
    captions: Optional[List[Optional[str]]] = None

    def to_dict(self) -> dict:
        return dict(name=self.name, kind=self.kind, num_files=len(self.paths),
                    first=self.paths[0] if self.paths else None)


def expand_braces(pattern: str) -> List[str]:
    """``a{000..002}.tar`` -> ``['a000.tar', 'a001.tar', 'a002.tar']`` (zero padding
    kept; several ranges expand as a product)."""
    m = re.search(r'\{(\d+)\.\.(\d+)\}', pattern)
    if m is None:
        return [pattern]
    lo, hi = m.group(1), m.group(2)
    width = len(lo)
    out = []
    for i in range(int(lo), int(hi) + 1):
        out += expand_braces(pattern[:m.start()] + str(i).zfill(width) + pattern[m.end():])
    return out


def plan_shards(source: str, shard_size: int = 1000,
                exclude: Optional[str] = None) -> List[InputShard]:
    """The shards of ``source`` (see the module docstring), in a fixed order;
    files under the folder ``exclude`` (the output directory) are ignored."""
    if shard_size < 1:
        raise ValueError(f'shard_size must be >= 1, got {shard_size}')
    if any(c in source for c in '*?[') or re.search(r'\{\d+\.\.\d+\}', source):
        tars = sorted({p for pat in expand_braces(source) for p in glob.glob(pat)})
        if not tars:
            raise FileNotFoundError(f'no file matches the input pattern {source!r}')
        return _tar_shards(tars)
    if osp.isfile(source) and source.endswith('.tar'):
        return _tar_shards([source])
    if osp.isfile(source):
        paths, captions = _read_file_list(source)
        return _file_shards(paths, captions, shard_size)
    if osp.isdir(source):
        images, tars = [], []
        skip = osp.realpath(exclude) if exclude else None
        for root, dirs, files in os.walk(source):
            dirs[:] = sorted(d for d in dirs if osp.realpath(osp.join(root, d)) != skip)
            for f in sorted(files):
                if f.lower().endswith(IMAGE_EXTENSIONS):
                    images.append(osp.join(root, f))
                elif f.endswith('.tar'):
                    tars.append(osp.join(root, f))
        if images and tars:
            raise ValueError(f'{source} holds both image files and .tar shards; give one kind')
        if tars:
            return _tar_shards(sorted(tars))
        if not images:
            raise FileNotFoundError(
                f'{source}: no image files ({", ".join(IMAGE_EXTENSIONS)}) and no .tar shards')
        return _file_shards(sorted(images), [None] * len(images), shard_size)
    raise FileNotFoundError(f'input {source!r} is not a folder, a file list, a .tar or a '
                            'pattern of .tar files')


def _read_file_list(path: str):
    root = osp.dirname(osp.abspath(path))
    paths, captions = [], []
    with open(path, encoding='utf-8') as f:
        for line_no, line in enumerate(f, start=1):
            line = line.rstrip('\n')
            if not line.strip() or line.startswith('#'):
                continue
            file, _, caption = line.partition('\t')
            file = file.strip()
            if not file.lower().endswith(IMAGE_EXTENSIONS):
                raise ValueError(f'{path}:{line_no}: {file!r} is not an image file '
                                 f'({", ".join(IMAGE_EXTENSIONS)})')
            paths.append(file if osp.isabs(file) else osp.join(root, file))
            captions.append(caption.strip() or None)
    if not paths:
        raise ValueError(f'{path}: the file list is empty')
    return paths, captions


def _file_shards(paths, captions, shard_size) -> List[InputShard]:
    return [InputShard(f'{i // shard_size:05d}', 'files', paths[i:i + shard_size],
                       captions[i:i + shard_size])
            for i in range(0, len(paths), shard_size)]


def _tar_shards(tars: List[str]) -> List[InputShard]:
    names = [osp.basename(t)[:-len('.tar')] for t in tars]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f'tar shards with the same file name in different folders: {sorted(dup)}')
    return [InputShard(n, 'tar', [t]) for n, t in zip(names, tars)]


def file_key(path: str) -> str:
    """A key for a loose image file: its stem with unsafe characters replaced."""
    return _KEY_UNSAFE.sub('_', osp.splitext(osp.basename(path))[0])


def iter_shard(shard: InputShard) -> Iterator[InputItem]:
    """The images of ``shard``, in order. An unreadable file still yields an item
    (``data=None``, ``meta['error']``) so that it is counted, not lost."""
    if shard.kind == 'tar':
        yield from _iter_tar(shard.paths[0])
        return
    seen = set()
    for path, caption in zip(shard.paths, shard.captions or [None] * len(shard.paths)):
        key = file_key(path)
        if key in seen:  # same stem in two folders: make it unique, deterministically
            n = 1
            while f'{key}_{n}' in seen:
                n += 1
            key = f'{key}_{n}'
        seen.add(key)
        meta = _sidecar_meta(path)
        if caption is not None:
            meta['caption'] = caption
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except OSError as e:
            data, meta['error'] = None, f'cannot read {path}: {e}'
        yield InputItem(key, osp.splitext(path)[1].lower(), data, meta, path, path)


def _sidecar_meta(path: str) -> dict:
    stem = osp.splitext(path)[0]
    meta = {}
    if osp.isfile(stem + '.json'):
        try:
            with open(stem + '.json', encoding='utf-8') as f:
                loaded = json.load(f)
            meta.update(loaded if isinstance(loaded, dict) else {})
        except (OSError, ValueError):
            pass
    if osp.isfile(stem + '.txt'):
        with open(stem + '.txt', encoding='utf-8', errors='replace') as f:
            meta['caption'] = f.read().strip()
    return meta


def _iter_tar(tar_path: str) -> Iterator[InputItem]:
    """Group the members of a webdataset tar by key (the basename up to its first
    dot); yield an item per key that has an image."""
    group_key, group = None, {}

    def flush():
        if group_key is None:
            return None
        image_ext = next((e for e in IMAGE_EXTENSIONS if e[1:] in group
                          or e[1:].upper() in group), None)
        if image_ext is None:
            return None
        data = group.get(image_ext[1:], group.get(image_ext[1:].upper()))
        meta = {}
        if 'json' in group:
            try:
                loaded = json.loads(group['json'].decode('utf-8'))
                meta.update(loaded if isinstance(loaded, dict) else {})
            except (UnicodeDecodeError, ValueError):
                meta['json_error'] = f'{tar_path}:{group_key}.json is not valid JSON'
        if 'txt' in group and 'caption' not in meta:
            meta['caption'] = group['txt'].decode('utf-8', errors='replace').strip()
        key = _KEY_UNSAFE.sub('_', group_key)
        return InputItem(key, image_ext, data, meta, f'{tar_path}:{group_key}{image_ext}', None)

    with tarfile.open(tar_path, 'r|*') as tar:
        for member in tar:
            if not member.isfile():
                continue
            base = osp.basename(member.name)
            if '.' not in base:
                continue
            dirname = osp.dirname(member.name)
            stem, ext = base.split('.', 1)
            key = osp.join(dirname, stem)
            if key != group_key:
                item = flush()
                if item is not None:
                    yield item
                group_key, group = key, {}
            group[ext] = tar.extractfile(member).read()
        item = flush()
        if item is not None:
            yield item


def read_image(data: bytes):
    """Decode to an RGB ``PIL.Image`` with the EXIF orientation applied (as OpenCV's
    ``IMREAD_COLOR``, i.e. as the training pipeline will see it)."""
    from PIL import Image, ImageOps
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
        return img.convert('RGB')
