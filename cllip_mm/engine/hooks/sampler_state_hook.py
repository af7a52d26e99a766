# Copyright (c) cllip_mm contributors. All rights reserved.
"""Save the training sampler's or stream's state in checkpoints and hand it back on load."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.runner import BaseLoop

from cllip_mm.registry import HOOKS
from ..resume import SAMPLER_STATE_KEY, STREAM_STATE_KEY, ResumableSampler, ResumableStream


def find_train_sampler(dataloader) -> Optional[ResumableSampler]:
    """The :class:`~cllip_mm.engine.resume.ResumableSampler` of a dataloader
    (``dataloader.sampler`` or the sampler of a plain ``torch.utils.data.BatchSampler``),
    or None."""
    from torch.utils.data import BatchSampler
    for sampler in (getattr(dataloader, 'sampler', None),
                    getattr(getattr(dataloader, 'batch_sampler', None), 'sampler', None)):
        if isinstance(sampler, ResumableSampler):
            if type(dataloader.batch_sampler) is not BatchSampler:
                return None  # a custom batch sampler may buffer indices
            return sampler
    return None


@HOOKS.register_module()
class SamplerStateHook(Hook):
    """Saves and loads the state of the resume contract (:mod:`cllip_mm.engine.resume`).

    Puts ``sampler.state_dict(iter * batch_size)`` of a
    :class:`~cllip_mm.engine.resume.ResumableSampler` in every checkpoint (key
    :data:`~cllip_mm.engine.resume.SAMPLER_STATE_KEY`) and gives a loaded one to the
    sampler as ``pending_state``; the :class:`~cllip_mm.engine.ResumableIterBasedTrainLoop`
    applies it when it resumes. That loop registers this hook itself.

    For a :class:`~cllip_mm.engine.resume.ResumableStream` it saves instead the last
    stream state of every dataloader worker of every rank (key
    :data:`~cllip_mm.engine.resume.STREAM_STATE_KEY`), gathered from all ranks after
    each iteration when training with several processes (a small object per worker).
    """
    priority = 'LOW'  # after_train_iter before CheckpointHook's

    def __init__(self) -> None:
        self.stream_states: dict = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        states = getattr(runner.train_loop, 'stream_states', None)
        if not states:
            return
        if runner.world_size > 1:
            from mmengine.dist import all_gather_object
            merged = {}
            for rank_states in all_gather_object(states):
                merged.update(rank_states)
            states = merged
        self.stream_states = dict(states)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if not isinstance(runner._train_loop, BaseLoop):
            return
        loader = runner.train_loop.dataloader
        if self.stream_states and isinstance(loader.dataset, ResumableStream):
            checkpoint[STREAM_STATE_KEY] = dict(
                states={str(g): s for g, s in self.stream_states.items()},
                num_batches=checkpoint['meta']['iter'],
                num_workers=max(loader.num_workers, 1), world_size=runner.world_size,
                seed=loader.dataset.seed)
            return
        sampler = find_train_sampler(loader)
        if sampler is None or not loader.batch_size:
            return
        num_batches = checkpoint['meta']['iter']  # iterations done when saving
        checkpoint[SAMPLER_STATE_KEY] = sampler.state_dict(num_batches * loader.batch_size)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not isinstance(runner._train_loop, BaseLoop):
            return
        dataset = runner.train_loop.dataloader.dataset
        if STREAM_STATE_KEY in checkpoint and isinstance(dataset, ResumableStream):
            dataset.pending_state = checkpoint[STREAM_STATE_KEY]
            return
        if SAMPLER_STATE_KEY not in checkpoint:
            return
        sampler = find_train_sampler(runner.train_loop.dataloader)
        if sampler is not None:
            sampler.pending_state = checkpoint[SAMPLER_STATE_KEY]
