# Copyright (c) cllip_mm contributors. All rights reserved.
"""Let MMEngine checkpoints load under ``torch.load(weights_only=True)``.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``: its unpickler only
builds tensors, containers and the globals allow-listed with
``torch.serialization.add_safe_globals``. MMEngine 0.10.x calls ``torch.load``
without ``weights_only``, and a checkpoint written by its ``Runner`` holds more than
tensors, so ``Runner.resume`` fails with ``UnpicklingError``:

- ``message_hub.log_scalars`` keeps every logged scalar in a
  :class:`~mmengine.logging.HistoryBuffer`, pickled as the class plus its
  ``__dict__``: two numpy arrays (float64 values, int64 counts) and
  ``statistics_methods``, a dict of ``HistoryBuffer.min/max/current/mean`` that
  protocol 2 pickles as ``builtins.getattr(HistoryBuffer, 'min')``;
- ``message_hub.runtime_info`` holds numpy scalars (``eta``, and ``best_score`` of
  ``CheckpointHook(save_best=...)``).

Instead of turning ``weights_only`` off (which lets a checkpoint run arbitrary code),
:func:`register_checkpoint_safe_globals` allow-lists exactly these inert types, and
resolves ``builtins.getattr`` to a guard that only returns HistoryBuffer's statistics
methods.
"""
from pickle import UnpicklingError
from typing import Any, Callable, List, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.utils import digit_version

SafeGlobal = Union[Callable, Tuple[Callable, str]]

# The statistics methods every HistoryBuffer registers (HistoryBuffer.__init__ ->
# _set_default_statistics) and pickles with its state.
_HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')

# numpy >= 2 moved ``numpy.core`` to ``numpy._core``; a pickle names the module of
# the numpy that wrote it, so checkpoints of either numpy must resolve.
_NUMPY_CORE_MODULES = ('numpy._core.multiarray', 'numpy.core.multiarray')

# Numeric dtypes a HistoryBuffer or a numpy scalar can hold. A dtype is pickled as
# ``numpy.dtype('f8', False, True)`` + BUILD, and the unpickler only BUILDs objects
# whose *type* is allow-listed: the dtype classes (``numpy.dtypes.Float64DType``).
_NUMERIC_DTYPES = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
                   np.uint16, np.uint32, np.uint64, np.float16, np.float32,
                   np.float64)


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """Stand-in for ``builtins.getattr`` in ``weights_only`` loads.

    Only resolves ``HistoryBuffer.<statistics method>``; anything else raises, as
    an unknown global would, so allow-listing it does not open ``getattr`` up.
    """
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise UnpicklingError(
        f'weights_only load: getattr({obj!r}, {name!r}) is not allowed; cllip_mm '
        'only allows getattr(HistoryBuffer, name) for name in '
        f'{_HISTORY_BUFFER_STATISTICS}')


def _numpy_multiarray():
    core = getattr(np, '_core', None) or np.core
    return core.multiarray


def checkpoint_safe_globals() -> List[SafeGlobal]:
    """The globals an MMEngine checkpoint needs beyond torch's defaults.

    Returns:
        list: Items for ``torch.serialization.add_safe_globals``: classes and
        functions, plus ``(callable, 'module.name')`` entries (torch >= 2.6, which
        accepts them) for the guarded ``builtins.getattr`` and for the
        ``numpy.core`` / ``numpy._core`` spellings of numpy's reconstructors.
    """
    multiarray = _numpy_multiarray()
    safe: List[SafeGlobal] = [
        # HistoryBuffer: NEWOBJ + BUILD (its __setstate__) of its __dict__.
        HistoryBuffer,
        # numpy arrays: _reconstruct(ndarray, (0,), b'b') + BUILD with a dtype;
        # dtypes: dtype('f8', False, True) + BUILD (checks the dtype class).
        np.ndarray,
        np.dtype,
        *[type(np.dtype(t)) for t in _NUMERIC_DTYPES],
    ]
    # numpy scalars (np.float64 in runtime_info) are scalar(dtype, bytes).
    reconstructors = (multiarray._reconstruct, multiarray.scalar)
    if digit_version(torch.__version__) < digit_version('2.6.0'):
        return safe + list(reconstructors)
    safe.append((_history_buffer_getattr, 'builtins.getattr'))
    for module in _NUMPY_CORE_MODULES:
        safe.extend((f, f'{module}.{f.__name__}') for f in reconstructors)
    return safe


def register_checkpoint_safe_globals() -> None:
    """Allow-list MMEngine's pickled types for ``torch.load(weights_only=True)``.

    Idempotent and cheap (called on ``import cllip_mm``). A no-op on torch < 2.4,
    which has no allow-list and does not default to ``weights_only=True``.
    """
    add_safe_globals: Any = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return
    add_safe_globals(checkpoint_safe_globals())
