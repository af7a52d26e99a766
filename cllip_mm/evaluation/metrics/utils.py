# Copyright (c) cllip_mm contributors. All rights reserved.
"""Reading the fields that ``CLOC.predict`` writes from a data sample."""
from collections import Counter
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.logging import MMLogger
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


#: Key of the result a metric keeps for a sample left out of the evaluation.
LEFT_OUT = 'left_out'


def left_out_reason(data_sample: Union[dict, BaseDataElement]) -> Optional[str]:
    """Why ``LoadImageFromFileChecked`` left this sample out (its ``skip_reason``:
    ``'unreadable image'``, ``'size mismatch'``), or None for a sample to evaluate.

    With ``on_bad_record='skip'`` a bad test image still goes through the model (as a
    black placeholder, so that every process keeps one result per sample); metrics
    keep ``{LEFT_OUT: reason}`` for it and drop it with :func:`drop_left_out`.
    """
    reason = _lookup(data_sample, 'skip_reason')
    return None if reason is _MISSING else str(reason)


def samples_to_evaluate(data_samples: Sequence[Union[dict, BaseDataElement]],
                        results: List[dict]) -> Iterator[Union[dict, BaseDataElement]]:
    """The samples of a batch to evaluate, in order; for each sample left out
    (:func:`left_out_reason`) ``{LEFT_OUT: reason}`` is appended to ``results`` instead, so
    that every sample keeps one result (``collect_results`` removes the distributed
    padding by counting them)."""
    for data_sample in data_samples:
        reason = left_out_reason(data_sample)
        if reason is None:
            yield data_sample
        else:
            results.append({LEFT_OUT: reason})


def as_topk(topk: Union[int, Sequence[int]]) -> Tuple[int, ...]:
    """``topk`` (an int or ints) as sorted unique positive ints; a ValueError otherwise."""
    topk = (topk, ) if isinstance(topk, int) else tuple(topk)
    if not topk or any(not isinstance(k, int) or k < 1 for k in topk):
        raise ValueError(f'topk must be positive ints, got {topk}.')
    return tuple(sorted(set(topk)))


def drop_left_out(results: Sequence[dict], metric: str,
                  dataset_meta: Optional[dict] = None) -> Tuple[List[dict], int]:
    """Remove the left-out results and count the images left out of the evaluation.

    The count adds the samples left out at load time and the records the dataset
    dropped when it read its annotation file (``dataset_meta['num_skipped_records']``,
    set by ``RegionTextDataset``); a warning says how many of each.

    Returns:
        tuple[list[dict], int]: The results to evaluate and ``num_images_left_out``.
    """
    kept = [res for res in results if LEFT_OUT not in res]
    reasons = Counter(res[LEFT_OUT] for res in results if LEFT_OUT in res)
    num_parse = int((dataset_meta or {}).get('num_skipped_records', 0) or 0)
    num_left_out = len(results) - len(kept) + num_parse
    if num_left_out:
        at_load = ', '.join(f'{k}: {v}' for k, v in sorted(reasons.items())) or 'none'
        MMLogger.get_current_instance().warning(
            f'{metric}: {num_left_out} images left out of the evaluation '
            f'({len(results) - len(kept)} bad at load time ({at_load}); {num_parse} '
            'records dropped when reading the annotation file); metrics are over the '
            f'other {len(kept)} images.')
    return kept, num_left_out
