# Copyright (c) cllip_mm contributors. All rights reserved.
"""Reading the fields that ``CLOC.predict`` writes from a data sample."""
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.structures import BaseDataElement

_MISSING = object()


def sample_name(data_sample: Union[dict, BaseDataElement]) -> str:
    """A name for ``data_sample`` in error messages: its ``img_path`` or ``img_id``."""
    for key in ('img_path', 'img_id', 'sample_idx'):
        value = _lookup(data_sample, key)
        if value is not _MISSING:
            return f'{key}={value!r}'
    return '<data sample without img_path>'


def _lookup(container: Any, name: str) -> Any:
    if isinstance(container, Mapping):
        return container.get(name, _MISSING)
    if isinstance(container, BaseDataElement):
        # Works for data and metainfo fields, and for the property-backed fields of
        # RegionTextDataSample (``gt_regions`` raises AttributeError when unset).
        return getattr(container, name, _MISSING)
    return _MISSING


def get_field(data_sample: Union[dict, BaseDataElement],
              key: str,
              metric: str,
              hint: str = '') -> Any:
    """Read a (dotted) field of a data sample.

    Args:
        data_sample (dict | BaseDataElement): A sample as the evaluator passes it (the
            ``to_dict()`` of a :class:`RegionTextDataSample`) or the sample itself.
            Nested fields (``pred_regions``) may be dicts or ``InstanceData``.
        key (str): E.g. ``'pred_regions.scores'`` or ``'caption'``.
        metric (str): Name of the calling metric, for the error message.
        hint (str): Appended to the error message.

    Raises:
        KeyError: Naming the sample's ``img_path``, the metric and the field.
    """
    value = data_sample
    for name in key.split('.'):
        value = _lookup(value, name)
        if value is _MISSING:
            msg = (f'{metric}: data sample {sample_name(data_sample)} has no field '
                   f'"{key}".')
            raise KeyError(f'{msg} {hint}'.strip())
    return value


def get_tensor(data_sample: Union[dict, BaseDataElement],
               key: str,
               metric: str,
               ndim: Optional[int] = None,
               last_dim: Optional[int] = None,
               hint: str = '') -> torch.Tensor:
    """:func:`get_field` for a tensor, detached, on CPU, with its shape checked.

    Numpy arrays and sequences are converted with ``torch.as_tensor``.

    Raises:
        KeyError: The field is missing.
        ValueError: It is not ``ndim``-dimensional or its last dim is not ``last_dim``.
    """
    value = get_field(data_sample, key, metric, hint)
    if not isinstance(value, torch.Tensor):
        if not isinstance(value, (np.ndarray, Sequence)) or isinstance(value, str):
            raise TypeError(f'{metric}: data sample {sample_name(data_sample)}: field '
                            f'"{key}" must be a tensor, got {type(value).__name__}.')
        value = torch.as_tensor(np.asarray(value))
    value = value.detach().cpu()
    bad_ndim = ndim is not None and value.dim() != ndim
    bad_last = last_dim is not None and (value.dim() == 0 or value.shape[-1] != last_dim)
    if bad_ndim or bad_last:
        want = ', '.join(
            ([f'{ndim} dims'] if ndim is not None else [])
            + ([f'last dim {last_dim}'] if last_dim is not None else []))
        raise ValueError(f'{metric}: data sample {sample_name(data_sample)}: field '
                         f'"{key}" has shape {tuple(value.shape)}, expected {want}.')
    return value
