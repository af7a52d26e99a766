# Copyright (c) cllip_mm contributors. All rights reserved.
"""Files that appear complete or not at all: write a temporary, fsync, rename.

A reader (or a process killed at any moment) sees the old file or the whole new one:
the data goes to a temporary file next to the target, is flushed to disk, renamed over
the target (``os.replace``, atomic on POSIX file systems) and the rename is made durable
by an fsync of the directory. Used by :class:`~cllip_mm.engine.AtomicCheckpointHook`
(checkpoints, ``last_checkpoint``) and the VESL shard writer (:mod:`cllip_mm.vesl.writers`).
"""
import json
import os
import os.path as osp
from typing import Any, Callable, Optional


def tmp_suffix() -> str:
    """The default temporary suffix, ``.tmp-PID`` (distinct per writing process)."""
    return f'.tmp-{os.getpid()}'


def atomic_write(path: str, write: Callable[[Any], None], mode: str = 'w',
                 suffix: Optional[str] = None) -> None:
    """``write(f)`` into ``path + suffix`` (default :func:`tmp_suffix`), then
    :func:`commit_file` it to ``path``. ``mode`` is ``'w'`` (UTF-8 text) or ``'wb'``.
    On failure the temporary file is removed, ``path`` is untouched and the error
    raised."""
    tmp = path + (tmp_suffix() if suffix is None else suffix)
    kwargs = dict(encoding='utf-8') if 'b' not in mode else {}
    try:
        with open(tmp, mode, **kwargs) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    fsync_dir(osp.dirname(path) or '.')


def atomic_write_bytes(path: str, data: bytes, suffix: Optional[str] = None) -> None:
    """:func:`atomic_write` of ``data``."""
    atomic_write(path, lambda f: f.write(data), mode='wb', suffix=suffix)


def atomic_write_json(path: str, obj: Any, indent: Optional[int] = 2) -> None:
    """:func:`atomic_write` of ``json.dump(obj)``."""
    atomic_write(path, lambda f: json.dump(obj, f, indent=indent))


def commit_file(tmp: str, path: str) -> None:
    """Make a complete temporary file ``tmp`` (written by other code, e.g.
    ``torch.save`` or ``tarfile``) durable and rename it to ``path``."""
    with open(tmp, 'rb+') as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(osp.dirname(path) or '.')


def remove_quietly(path: str) -> None:
    """``os.remove(path)``; nothing if it does not exist."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def fsync_dir(path: str) -> None:
    """Persist a rename in directory ``path`` (POSIX); a no-op where directories cannot
    be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
