# Copyright (c) cllip_mm contributors. All rights reserved.
"""Checkpoints that survive a kill at any moment and a full disk."""
import copy
import glob
import os
import os.path as osp
import shutil
from contextlib import contextmanager
from typing import Any, Iterator, List

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook

from cllip_mm.registry import HOOKS
from cllip_mm.utils.atomic_files import atomic_write_bytes as _atomic_write_bytes
from cllip_mm.utils.atomic_files import commit_file, remove_quietly

#: Suffix of a checkpoint being written; renamed to its final name once complete.
PART_SUFFIX = '.part'
#: Folder in the work dir where MMEngine's code writes ``last_checkpoint`` during a
#: save; the complete file is then renamed into the work dir.
LAST_CHECKPOINT_SCRATCH = 'last_checkpoint' + PART_SUFFIX


class CheckpointSaveError(OSError):
    """Writing a checkpoint failed (e.g. a full disk); the previous one is intact."""


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader (or a kill) sees the old file or the
    whole new one (through ``path + '.part'``; :mod:`cllip_mm.utils.atomic_files`)."""
    _atomic_write_bytes(path, data, suffix=PART_SUFFIX)


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

    How: the hook's entry points (``after_train_iter``, ``after_train_epoch``,
    ``after_val_epoch``) run MMEngine's own saving logic (intervals, ``max_keep_ckpts``,
    best checkpoints, the message hub's bookkeeping) unchanged, through the public
    interfaces it calls: ``runner.save_checkpoint`` goes through a ``.part`` file,
    ``runner.work_dir`` is a scratch folder for ``last_checkpoint``, and the hook's
    ``file_backend`` records removals instead of doing them. Once every save of the
    call succeeded, ``last_checkpoint`` is renamed into place and the removals are done;
    if one fails, the removals are dropped and the hook's bookkeeping is restored.
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self._is_local() and is_main_process():
            stale = glob.glob(osp.join(glob.escape(self.out_dir), '*' + PART_SUFFIX))
            scratch = osp.join(runner.work_dir, LAST_CHECKPOINT_SCRATCH)
            for path in sorted({*stale, *([scratch] if osp.exists(scratch) else [])}):
                runner.logger.warning(f'Removing {path}, a checkpoint whose writing was '
                                      'interrupted by an earlier run.')
                _remove_path(path)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        with self._atomic_saves(runner) as saver:
            super().after_train_iter(saver, batch_idx, data_batch, outputs)

    def after_train_epoch(self, runner) -> None:
        with self._atomic_saves(runner) as saver:
            super().after_train_epoch(saver)

    def after_val_epoch(self, runner, metrics) -> None:
        with self._atomic_saves(runner) as saver:
            super().after_val_epoch(saver, metrics)

    def _is_local(self) -> bool:
        backend = self.file_backend
        return isinstance(getattr(backend, '_backend', backend), LocalBackend)

    @contextmanager
    def _atomic_saves(self, runner) -> Iterator['_AtomicSaveRunner']:
        """The runner as MMEngine's saving code should see it (see the class doc);
        commit on success, roll back on an error."""
        if isinstance(runner, _AtomicSaveRunner):  # already inside
            yield runner
            return
        saver = _AtomicSaveRunner(self, runner)
        backend, deferred = self.file_backend, _DeferRemovals(self.file_backend)
        before = self._bookkeeping(runner)
        self._resume_from = self.last_ckpt
        self.file_backend = deferred
        try:
            yield saver
        except BaseException:
            self.file_backend = backend
            self._restore(runner, before)
            saver.drop_scratch()
            raise
        self.file_backend = backend
        saver.commit_last_checkpoint()
        current = {self.last_ckpt, getattr(self, 'best_ckpt_path', None),
                   *(getattr(self, 'best_ckpt_path_dict', None) or {}).values()}
        for path in deferred.removed:
            if path not in current and is_main_process():
                self._remove(path)

    #: the hook's attributes that a save changes
    _STATE_ATTRS = ('last_ckpt', 'keep_ckpt_ids', 'best_ckpt_path', 'best_ckpt_path_dict')

    def _bookkeeping(self, runner) -> dict:
        hub = runner.message_hub.runtime_info
        return dict(
            attrs={k: copy.copy(getattr(self, k)) for k in self._STATE_ATTRS
                   if hasattr(self, k)},
            hub={k: copy.copy(v) for k, v in hub.items() if _saved_info(k)})

    def _restore(self, runner, before: dict) -> None:
        for key, value in before['attrs'].items():
            setattr(self, key, value)
        hub = runner.message_hub
        for key in [k for k in hub.runtime_info if _saved_info(k)]:
            if key not in before['hub']:
                hub.runtime_info.pop(key)
        for key, value in before['hub'].items():
            hub.update_info(key, value)

    def _atomic_save(self, runner, filename: str, **kwargs) -> None:
        """``runner.save_checkpoint(out_dir, filename)`` through a ``.part`` file."""
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
                commit_file(part, path)
        except BaseException as e:
            if is_main_process():
                remove_quietly(part)
            if not isinstance(e, OSError):
                raise
            resume_from = getattr(self, '_resume_from', self.last_ckpt) or 'none yet'
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


def _saved_info(key: str) -> bool:
    """Message hub entries that ``CheckpointHook`` sets when it saves."""
    return key in ('keep_ckpt_ids', 'last_ckpt') or key.startswith('best_')


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
    """The runner, with ``save_checkpoint`` going through the hook's atomic save and
    ``work_dir`` a scratch folder for ``last_checkpoint``."""

    def __init__(self, hook: AtomicCheckpointHook, runner: Any) -> None:
        self._hook = hook
        self._runner = runner
        self._scratch = osp.join(runner.work_dir, LAST_CHECKPOINT_SCRATCH)

    def save_checkpoint(self, out_dir: str, filename: str, file_client_args=None,
                        backend_args=None, **kwargs) -> None:
        assert out_dir == self._hook.out_dir, (out_dir, self._hook.out_dir)
        self._hook._atomic_save(self._runner, filename, **kwargs)

    @property
    def work_dir(self) -> str:
        # CheckpointHook reads it (main process) only to write `last_checkpoint`
        os.makedirs(self._scratch, exist_ok=True)
        return self._scratch

    def commit_last_checkpoint(self) -> None:
        """Rename a ``last_checkpoint`` written in the scratch folder into place."""
        if not is_main_process():
            return
        written = osp.join(self._scratch, 'last_checkpoint')
        if osp.isfile(written):
            commit_file(written, osp.join(self._runner.work_dir, 'last_checkpoint'))
        self.drop_scratch()

    def drop_scratch(self) -> None:
        if is_main_process() and osp.isdir(self._scratch):
            shutil.rmtree(self._scratch, ignore_errors=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runner, name)


def _remove_path(path: str) -> None:
    if osp.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        remove_quietly(path)
