# Copyright (c) cllip_mm contributors. All rights reserved.
"""Webdataset-style tar shards (img2dataset layout): read from a byte offset, write.

A shard is a plain tar file whose consecutive members sharing a key form one sample:
``KEY.jpg`` + ``KEY.json`` (+ anything else, e.g. img2dataset's ``KEY.txt``). The key is
the member path up to the first dot of its basename (webdataset's convention). Every
sample is located by the byte offset of its first member header, so a reader can start
at any sample with one ``seek``.
"""
import io
import json
import os
import os.path as osp
import re
import tarfile
from typing import Dict, Iterator, List, Sequence, Tuple, Union


def expand_shards(spec: Union[str, Sequence[str]], root: str = '') -> List[str]:
    """Shard paths from brace patterns (``'shards/{00000..00009}.tar'``, zero padding
    kept; ``'{a,b}'`` lists) or a list of them; relative paths are joined to ``root``."""
    specs = [spec] if isinstance(spec, str) else list(spec)
    out: List[str] = []
    for s in specs:
        out += _expand_braces(s)
    return [p if osp.isabs(p) or not root else osp.join(root, p) for p in out]


def _expand_braces(pattern: str) -> List[str]:
    match = re.search(r'\{([^{}]*)\}', pattern)
    if match is None:
        return [pattern]
    head, tail, body = pattern[:match.start()], pattern[match.end():], match.group(1)
    rng = re.fullmatch(r'(\d+)\.\.(\d+)', body)
    if rng:
        lo, hi = rng.groups()
        width = len(lo) if lo.startswith('0') or len(lo) == len(hi) else 0
        items = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    else:
        items = body.split(',')
    return [p for item in items for p in _expand_braces(head + item + tail)]


def sample_key(name: str) -> Tuple[str, str]:
    """``('dir/KEY', 'ext')`` of a member path ``dir/KEY.ext`` (first dot of the
    basename, so ``a.seg.png`` has the extension ``seg.png``)."""
    dirname, _, base = name.rpartition('/')  # tar member names use '/'
    key, _, ext = base.partition('.')
    return (f'{dirname}/{key}' if dirname else key), ext.lower()


#: read buffer of a shard (bytes): a small member is a header and a data read from it
_READ_BUFFER = 1 << 20


def _members(f, offset: int, size: int, path: str) -> Iterator[Tuple[str, int, bytes]]:
    """``(name, header offset, data)`` of the file members of the open shard ``f`` from
    byte ``offset`` (a member's first header), read by ``tarfile`` started there. A
    member's offset is that of its first header (a GNU long name or pax header
    included), where a reader can start again.

    Raises:
        tarfile.ReadError: A member cut short, or anything but the end-of-archive zero
            blocks where ``tarfile`` stops (a corrupt header, a cut one).
    """
    f.seek(offset)
    tar = tarfile.open(fileobj=f, mode='r:')  # its offsets are positions in the file
    for member in tar:
        if member.offset_data + member.size > size:
            raise tarfile.ReadError(f'{path}: truncated member {member.name}')
        if member.isfile():
            yield member.name, member.offset, tar.extractfile(member).read()
    # tarfile stops quietly at an invalid or cut header after the first one: what
    # follows must be the end-of-archive zero blocks
    f.seek(tar.offset)
    rest = f.read(tarfile.BLOCKSIZE)
    corrupt = len(rest) < tarfile.BLOCKSIZE  # not even one end-of-archive block
    while rest and not corrupt:
        corrupt = bool(rest.strip(b'\0'))
        rest = f.read(_READ_BUFFER)
    if corrupt:
        raise tarfile.ReadError(f'{path}: truncated or corrupt after byte {tar.offset}')


def iter_tar_samples(path: str, offset: int = 0
                     ) -> Iterator[Tuple[str, Dict[str, bytes], int, int]]:
    """Yield ``(key, {ext: bytes}, start, end)`` for each sample of a tar shard,
    starting at byte ``offset`` (a sample start, or 0); ``end`` is the offset of the
    next sample (where a reader resumes after this one).

    Raises:
        tarfile.TarError, OSError: A truncated or corrupt shard (the caller counts it).
    """
    size = os.path.getsize(path)
    if offset and offset >= size:
        return
    with open(path, 'rb', buffering=_READ_BUFFER) as f:
        key, files, start = None, {}, offset
        for name, member_offset, data in _members(f, offset, size, path):
            k, ext = sample_key(name)
            if key is not None and k != key:
                yield key, files, start, member_offset
                files = {}
            if k != key:
                key, start = k, member_offset
            files[ext] = data
        if key is not None:
            yield key, files, start, size


class ShardWriter:
    """Write samples to numbered tar shards ``pattern % index`` (e.g.
    ``'out/%05d.tar'``), at most ``max_samples`` per shard.

    Use as a context manager; :meth:`write` takes a key and ``{ext: bytes or JSON
    object}``. :attr:`paths` lists the shards written.
    """

    def __init__(self, pattern: str, max_samples: int = 1000) -> None:
        if max_samples < 1:
            raise ValueError(f'max_samples must be >= 1, got {max_samples}')
        self.pattern = pattern
        self.max_samples = max_samples
        self.paths: List[str] = []
        self._tar = None
        self._count = 0

    def write(self, key: str, files: Dict[str, Union[bytes, dict]]) -> None:
        if self._tar is None or self._count >= self.max_samples:
            self._next_shard()
        for ext, data in files.items():
            if not isinstance(data, bytes):
                data = json.dumps(data).encode('utf-8')
            info = tarfile.TarInfo(f'{key}.{ext}')
            info.size = len(data)
            info.mode = 0o644
            self._tar.addfile(info, io.BytesIO(data))
        self._count += 1

    def _next_shard(self) -> None:
        self.close()
        path = self.pattern % len(self.paths)
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        self._tar = tarfile.open(path, 'w', format=tarfile.USTAR_FORMAT)
        self.paths.append(path)
        self._count = 0

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def __enter__(self) -> 'ShardWriter':
        return self

    def __exit__(self, *exc) -> None:
        self.close()
