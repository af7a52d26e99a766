# Copyright (c) cllip_mm contributors. All rights reserved.
"""Checkpoints that survive a kill at any moment and a full disk."""
import glob
import os
import os.path as osp
from collections import deque
from typing import Any, List

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook

from cllip_mm.registry import HOOKS

#: Suffix of a checkpoint being written; renamed to its final name once complete.
PART_SUFFIX = '.part'


class CheckpointSaveError(OSError):
    """Writing a checkpoint failed (e.g. a full disk); the previous one is intact."""


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader (or a kill) sees the old file or the
    whole new one: write ``path + '.part'``, fsync, rename over ``path``, fsync the
    directory. On failure the partial file is removed and the error raised."""
    part = path + PART_SUFFIX
    try:
        with open(part, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, path)
    except BaseException:
        _remove_quietly(part)
        raise
    _fsync_dir(osp.dirname(path) or '.')


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook`` whose work dir stays resumable whatever happens.

    MMEngine 0.10's hook writes ``iter_N.pth`` in place, removes the oldest checkpoint
    (``max_keep_ckpts``) and the previous best one *before* writing the new one, and
    rewrites ``last_checkpoint`` in place. A SIGKILL or a full disk in the middle
    leaves a truncated checkpoint under its final name, an empty ``last_checkpoint``
    or no complete checkpoint at all. With this hook, on a local disk:

    1. a checkpoint is written to ``<name>.part``, fsynced, then renamed to ``<name>``
       (a rename is atomic), so a file with a checkpoint's name is always complete;
    2. ``last_checkpoint`` is replaced the same way, only after the rename;
    3. old and previous-best checkpoints are removed only after that;
    4. a failed write (``OSError``, e.g. ``ENOSPC``) removes the partial file, keeps
       ``last_checkpoint`` and every kept checkpoint, and raises
       :class:`CheckpointSaveError` naming the file, the cause and the checkpoint to
       resume from; stale ``*.part`` files of a killed run are removed at start.

    So ``tools/train.py CONFIG --resume`` always finds a complete checkpoint (or none
    before the first one). Other storage backends keep MMEngine's behaviour (object
    stores replace an object atomically). Arguments are those of ``CheckpointHook``.
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self._is_local() and is_main_process():
            for stale in glob.glob(osp.join(glob.escape(self.out_dir), '*' + PART_SUFFIX)):
                runner.logger.warning(f'Removing {stale}, a checkpoint whose writing was '
                                      'interrupted by an earlier run.')
                _remove_quietly(stale)

    def _is_local(self) -> bool:
        backend = self.file_backend
        return isinstance(getattr(backend, '_backend', backend), LocalBackend)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        """Save ``filename_tmpl.format(step)``, then point ``last_checkpoint`` to it,
        then remove the checkpoints beyond ``max_keep_ckpts``."""
        runner = _unwrap(runner)
        keep_ids: List[int] = list(getattr(self, 'keep_ckpt_ids', []))
        to_remove: List[int] = []
        hub = runner.message_hub
        previous = {k: hub.runtime_info[k] for k in ('keep_ckpt_ids', 'last_ckpt')
                    if k in hub.runtime_info}
        if self.max_keep_ckpts > 0 and not (keep_ids and keep_ids[-1] == step):
            keep_ids.append(step)
            while len(keep_ids) > self.max_keep_ckpts:
                to_remove.append(keep_ids.pop(0))
            hub.update_info('keep_ckpt_ids', list(keep_ids))  # saved in the checkpoint
        filename = self.filename_tmpl.format(step)
        path = self.file_backend.join_path(self.out_dir, filename)
        hub.update_info('last_ckpt', path)
        try:
            self._atomic_save(runner, filename, save_optimizer=self.save_optimizer,
                              save_param_scheduler=self.save_param_scheduler, meta=meta,
                              by_epoch=self.by_epoch, **self.args)
        except BaseException:
            for key, value in previous.items():
                hub.update_info(key, value)
            raise
        self.last_ckpt = path
        if self.max_keep_ckpts > 0:
            self.keep_ckpt_ids = deque(keep_ids, self.max_keep_ckpts)
        if not is_main_process():
            return
        last = osp.join(runner.work_dir, 'last_checkpoint')
        atomic_write_bytes(last, str(path).encode('utf-8'))
        for old in to_remove:
            self._remove(self.file_backend.join_path(self.out_dir,
                                                     self.filename_tmpl.format(old)))

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """MMEngine's best-checkpoint logic, with the new best written atomically
        before the previous best is removed."""
        runner = _unwrap(runner)
        backend = self.file_backend
        deferred = _DeferRemovals(backend)
        self.file_backend = deferred
        try:
            super()._save_best_checkpoint(_AtomicSaveRunner(self, runner), metrics)
        finally:
            self.file_backend = backend
        current = {getattr(self, 'best_ckpt_path', None),
                   *getattr(self, 'best_ckpt_path_dict', {}).values()}
        for path in deferred.removed:
            if path not in current and is_main_process():
                self._remove(path)

    def _atomic_save(self, runner, filename: str, **kwargs) -> None:
        """``runner.save_checkpoint(out_dir, filename)`` through a ``.part`` file."""
        runner = _unwrap(runner)
        kwargs.update(file_client_args=self.file_client_args,
                      backend_args=self.backend_args)
        if not self._is_local() or self.file_client_args is not None:
            runner.save_checkpoint(self.out_dir, filename, **kwargs)
            return
        path = osp.join(self.out_dir, filename)
        part = path + PART_SUFFIX
        try:
            # Runner.save_checkpoint is master-only: other ranks write nothing.
            runner.save_checkpoint(self.out_dir, filename + PART_SUFFIX, **kwargs)
            if is_main_process():
                with open(part, 'rb+') as f:
                    os.fsync(f.fileno())
                os.replace(part, path)
                _fsync_dir(self.out_dir)
        except BaseException as e:
            if is_main_process():
                _remove_quietly(part)
            if not isinstance(e, OSError):
                raise
            resume_from = self.last_ckpt or 'none yet'
            raise CheckpointSaveError(
                e.errno, f'could not save checkpoint {path}: {e.strerror or e}. Nothing '
                f'was overwritten: the last complete checkpoint ({resume_from}) and '
                '`last_checkpoint` are intact; free space and resume with '
                '`tools/train.py CONFIG --resume`.') from e

    def _remove(self, path: str) -> None:
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # DeepSpeed checkpoints are directories
            self.file_backend.rmtree(path)


class _DeferRemovals:
    """A file backend that records ``remove`` / ``rmtree`` calls instead of doing them."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.removed: List[str] = []

    def remove(self, path: str) -> None:
        self.removed.append(path)

    rmtree = remove

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


class _AtomicSaveRunner:
    """The runner, with ``save_checkpoint`` going through the hook's atomic save."""

    def __init__(self, hook: AtomicCheckpointHook, runner: Any) -> None:
        self._hook = hook
        self._runner = runner

    def save_checkpoint(self, out_dir: str, filename: str, file_client_args=None,
                        backend_args=None, **kwargs) -> None:
        assert out_dir == self._hook.out_dir, (out_dir, self._hook.out_dir)
        self._hook._atomic_save(self._runner, filename, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runner, name)


def _unwrap(runner: Any) -> Any:
    return runner._runner if isinstance(runner, _AtomicSaveRunner) else runner


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _fsync_dir(path: str) -> None:
    """Persist a rename (POSIX); a no-op where directories cannot be opened."""
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

