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
import zlib
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union


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
    if '/' not in name:  # the common flat layout, without osp.split's cost
        key, _, ext = name.partition('.')
        return key, ext.lower()
    dirname, base = osp.split(name)
    key, _, ext = base.partition('.')
    return (osp.join(dirname, key) if dirname else key), ext.lower()


#: member types read as files; a type with data other than these and the GNU long name
#: / pax extended header (global pax headers, sparse files...) hands the rest of the
#: shard to ``tarfile``
_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_NO_DATA_TYPES = (tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
                  tarfile.DIRTYPE, tarfile.FIFOTYPE)
_EXT_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE)
#: how :func:`_members` treats each header type it parses (others go to ``tarfile``)
_KIND = {**{t: 'file' for t in _FILE_TYPES}, **{t: 'no data' for t in _NO_DATA_TYPES},
         **{t: 'ext' for t in _EXT_TYPES}}
_ZERO_BLOCK = bytes(tarfile.BLOCKSIZE)
#: read buffer of a shard (bytes)
_READ_BUFFER = 1 << 20


def _octal(field: bytes) -> int:
    """A numeric header field: NUL / space terminated octal, or GNU base-256 (first
    byte 0o200 / 0o377, left to ``tarfile.nti``). Raises ``tarfile.InvalidHeaderError``
    as ``tarfile.nti`` does."""
    if field[0] in (0o200, 0o377):
        return tarfile.nti(field)
    try:
        return int(field.split(b'\0', 1)[0].strip() or b'0', 8)
    except ValueError:
        raise tarfile.InvalidHeaderError('invalid header') from None


def _unsigned_chksum(buf: bytes) -> int:
    """``tarfile.calc_chksums(buf)[0]`` (the ustar checksum: the bytes of the header,
    its checksum field counted as 8 spaces) summed in C: the low 16 bits of Adler-32
    are 1 + the byte sum modulo 65521, exact for a run of at most 256 bytes
    (256 * 255 < 65520)."""
    return (zlib.adler32(buf[:148]) & 0xFFFF) + (zlib.adler32(buf[156:412]) & 0xFFFF) + \
        (zlib.adler32(buf[412:]) & 0xFFFF) - 3 + 256


def _pax_records(data: bytes) -> Dict[str, str]:
    """The ``"LEN key=value\\n"`` records of a pax extended header."""
    out, pos = {}, 0
    while pos < len(data) and data[pos:pos + 1] != b'\0':
        length = int(data[pos:data.index(b' ', pos)])
        key, _, value = data[data.index(b' ', pos) + 1:pos + length - 1].partition(b'=')
        out[key.decode('utf-8')] = value.decode('utf-8', 'surrogateescape')
        pos += length
    return out


def _members_tarfile(f, offset: int, size: int, path: str
                     ) -> Iterator[Tuple[str, int, bytes]]:
    """``(name, header offset, data)`` of the file members from ``offset``, read by
    ``tarfile`` (every header type it knows)."""
    f.seek(offset)
    tar = tarfile.open(fileobj=f, mode='r:')
    for member in tar:
        if member.offset_data + member.size > size:
            raise tarfile.ReadError(f'{path}: truncated member {member.name}')
        if member.isfile():
            yield member.name, member.offset, tar.extractfile(member).read()
    # tarfile stops quietly at a cut header or at the end of the file: what follows
    # must be the end-of-archive zero blocks
    f.seek(tar.offset)
    _check_end(f.read(), path, tar.offset)


def _check_end(rest: bytes, path: str, offset: int) -> None:
    if len(rest) < tarfile.BLOCKSIZE or rest.strip(b'\0'):
        raise tarfile.ReadError(f'{path}: truncated or corrupt after byte {offset}')


def _members(f, offset: int, size: int, path: str) -> Iterator[Tuple[str, int, bytes]]:
    """``(name, header offset, data)`` of the file members from ``offset``.

    Plain ustar / GNU headers of files, GNU long names and pax extended headers
    (``path``; webdataset's writer puts one before every member, for its float
    ``mtime``) are parsed here: ``tarfile`` spends most of a small member's time
    building a ``TarInfo``. At the first header of another kind with data the rest
    goes to :func:`_members_tarfile`. A member's offset is that of its first header
    (extended headers included), where a reader can start again.
    """
    block = tarfile.BLOCKSIZE
    f.seek(offset)
    ext: Dict[str, str] = {}  # GNU long name / pax records of the next member
    ext_start: Optional[int] = None  # offset of the next member's first extra header
    while True:
        buf = f.read(block)
        if len(buf) < block or buf == _ZERO_BLOCK:  # end of archive (or cut)
            _check_end(buf + f.read(), path, offset)
            return
        typ = buf[156:157]
        kind = _KIND.get(typ)
        if kind is None:
            yield from _members_tarfile(f, offset if ext_start is None else ext_start,
                                        size, path)
            return
        try:
            chksum = _octal(buf[148:156])
            length = _octal(buf[124:136])
        except tarfile.InvalidHeaderError as e:
            raise tarfile.ReadError(f'{path}: invalid header at byte {offset}: {e}')
        # the checksum counts its own field as spaces (ustar), as tarfile checks it
        # (the signed sum of old Sun / NeXT tars as well)
        if chksum != _unsigned_chksum(buf) and chksum not in tarfile.calc_chksums(buf):
            raise tarfile.ReadError(f'{path}: bad header checksum at byte {offset}')
        name = buf[:100].split(b'\0', 1)[0].decode('utf-8', 'surrogateescape')
        if buf[345] and buf[257:265] == tarfile.POSIX_MAGIC:  # ustar name prefix
            prefix = buf[345:500].split(b'\0', 1)[0].decode('utf-8', 'surrogateescape')
            name = f'{prefix}/{name}'
        data_offset = offset + block
        if kind == 'no data':
            length = 0
        if data_offset + length > size:
            raise tarfile.ReadError(f'{path}: truncated member {name}')
        padding = -length % block
        if kind == 'ext':  # a long name or pax header for the next member
            data = f.read(length)
            f.seek(padding, 1)
            if ext_start is None:
                ext_start = offset  # the member starts at its first extra header
            if typ == tarfile.GNUTYPE_LONGNAME:
                ext['path'] = data.split(b'\0', 1)[0].decode('utf-8', 'surrogateescape')
            else:
                ext.update(_pax_records(data))
        else:
            if ext:
                name = ext.get('path', name)
                if 'size' in ext and kind == 'file':  # pax size: files over 8 GiB
                    raise tarfile.ReadError(
                        f'{path}: member {name} too large for a sample')
                ext = {}
            if kind == 'file' and not name.endswith('/'):
                data = f.read(length)
                if padding:
                    f.seek(padding, 1)
                yield name, offset if ext_start is None else ext_start, data
            else:
                f.seek(length + padding, 1)
            ext_start = None
        offset = data_offset + length + padding


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
    # a large buffer: a sample is two small reads (header, data) and a seek past the
    # padding, all served from the buffer
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
