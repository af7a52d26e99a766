# Copyright (c) cllip_mm contributors. All rights reserved.
"""The resume contract between the train loop, the checkpoint and the data.

:class:`~cllip_mm.engine.ResumableIterBasedTrainLoop` resumes at iteration ``k`` without
replaying the ``k`` consumed batches when the train dataloader reads one of two kinds of
data, each written down here as a :class:`typing.Protocol` (checked with ``isinstance``):

- a map-style dataset under a :class:`ResumableSampler` (e.g.
  :class:`~cllip_mm.datasets.ResumableInfiniteSampler`): the sampler's position is a
  number of consumed indices per rank;
- a :class:`ResumableStream` (e.g. :class:`~cllip_mm.datasets.RegionTextShardStream`):
  every sample carries its reader's state after it, under :data:`SAMPLE_STATE_KEY`.

How a state travels:

1. saving: :class:`~cllip_mm.engine.SamplerStateHook` writes
   ``sampler.state_dict(k * batch_size)`` under :data:`SAMPLER_STATE_KEY`, or the last
   sample state of every dataloader worker of every rank (collected by the loop) under
   :data:`STREAM_STATE_KEY`;
2. loading: the hook hands the checkpoint's entry to the sampler or stream as its
   ``pending_state``;
3. resuming: the loop calls ``load_state_dict(pending_state)`` (and, for a sampler
   without a saved state, ``set_start(k * batch_size)``), clears ``pending_state`` and
   restarts the dataloader.

The key strings are part of the checkpoint format: changing one makes existing
checkpoints resume by replaying.
"""
import json
from abc import abstractmethod
from typing import Optional, Protocol, runtime_checkable

__all__ = [
    'SAMPLER_STATE_KEY', 'STREAM_STATE_KEY', 'SAMPLE_STATE_KEY', 'ResumableSampler',
    'ResumableStream', 'encode_sample_state', 'decode_sample_state'
]

#: Checkpoint key of a :class:`ResumableSampler`'s state.
SAMPLER_STATE_KEY = 'train_sampler'
#: Checkpoint key of a :class:`ResumableStream`'s state (the worker states).
STREAM_STATE_KEY = 'train_stream'
#: Key of a streamed sample's reader state (a JSON string, :func:`encode_sample_state`;
#: a string passes any collate function unchanged). The loop pops it from each batch.
SAMPLE_STATE_KEY = '_stream_state'


@runtime_checkable
class ResumableSampler(Protocol):
    """A sampler whose position is the number of indices each rank consumed.

    The loop uses it only under a plain ``torch.utils.data.BatchSampler`` (a custom
    batch sampler may buffer indices).
    """

    #: the seed of the index stream (saved in the state, logged on resume)
    seed: int
    #: indices of this rank consumed before the next ``__iter__`` starts
    start: int
    #: the checkpoint's state, set by the hook, applied and cleared by the loop
    pending_state: Optional[dict]

    @abstractmethod
    def state_dict(self, num_consumed: int) -> dict:
        """The state after ``num_consumed`` indices per rank (plain Python values,
        ``num_consumed`` among them)."""

    @abstractmethod
    def load_state_dict(self, state: dict) -> None:
        """Start the next ``__iter__`` where ``state`` (from :meth:`state_dict`) is."""

    @abstractmethod
    def set_start(self, num_consumed: int) -> None:
        """Start the next ``__iter__`` after ``num_consumed`` indices of this rank."""


@runtime_checkable
class ResumableStream(Protocol):
    """An iterable dataset whose samples carry their reader's state.

    Each sample is a dict holding, under :data:`SAMPLE_STATE_KEY`, the
    :func:`encode_sample_state` of a dict with at least ``worker``: the global
    dataloader worker (``rank * num_workers + worker id``) that read it. The loop keeps
    the last state of each worker; the hook saves them as ``dict(states={str(worker):
    state}, num_batches=k, num_workers=N, world_size=W, seed=seed)``, which
    :meth:`load_state_dict` receives on resume.
    """

    #: the stream's seed (saved with the worker states)
    seed: int
    #: the checkpoint's state, set by the hook, applied and cleared by the loop
    pending_state: Optional[dict]

    @abstractmethod
    def load_state_dict(self, state: dict) -> None:
        """Start every worker after its last trained sample."""


def encode_sample_state(state: dict) -> str:
    """The :data:`SAMPLE_STATE_KEY` value of a sample (plain Python values)."""
    return json.dumps(state)


def decode_sample_state(value: str) -> dict:
    """The state written by :func:`encode_sample_state`."""
    return json.loads(value)
