# Copyright (c) cllip_mm contributors. All rights reserved.
"""Save the training sampler's state in checkpoints and hand it back on load."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.runner import BaseLoop

from cllip_mm.registry import HOOKS

#: Key of the sampler state in a checkpoint.
CHECKPOINT_KEY = 'train_sampler'
#: Key of the stream state (``RegionTextShardStream``) in a checkpoint.
STREAM_CHECKPOINT_KEY = 'train_stream'


def find_train_sampler(dataloader) -> Optional[object]:
    """The resumable sampler of a dataloader (``dataloader.sampler`` or the sampler of a
    plain ``torch.utils.data.BatchSampler``), or None."""
    from torch.utils.data import BatchSampler
    for sampler in (getattr(dataloader, 'sampler', None),
                    getattr(getattr(dataloader, 'batch_sampler', None), 'sampler', None)):
        if hasattr(sampler, 'state_dict') and hasattr(sampler, 'set_start'):
            if type(dataloader.batch_sampler) is not BatchSampler:
                return None  # a custom batch sampler may buffer indices
            return sampler
    return None


@HOOKS.register_module()
class SamplerStateHook(Hook):
    """Puts ``sampler.state_dict(iter * batch_size)`` in every checkpoint (key
    ``train_sampler``) and gives a loaded one to the sampler as ``pending_state``; the
    :class:`~cllip_mm.engine.ResumableIterBasedTrainLoop` applies it when it resumes.
    That loop registers this hook itself.

    For a streaming dataset it saves instead the last stream state of every dataloader
    worker of every rank (key ``train_stream``), gathered from all ranks after each
    iteration when training with several processes (a small object per worker).
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
        if self.stream_states and hasattr(loader.dataset, 'resume_states'):
            checkpoint[STREAM_CHECKPOINT_KEY] = dict(
                states={str(g): s for g, s in self.stream_states.items()},
                num_batches=checkpoint['meta']['iter'],
                num_workers=max(loader.num_workers, 1), world_size=runner.world_size,
                seed=loader.dataset.seed)
            return
        sampler = find_train_sampler(loader)
        if sampler is None or not loader.batch_size:
            return
        num_batches = checkpoint['meta']['iter']  # iterations done when saving
        checkpoint[CHECKPOINT_KEY] = sampler.state_dict(num_batches * loader.batch_size)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not isinstance(runner._train_loop, BaseLoop):
            return
        if STREAM_CHECKPOINT_KEY in checkpoint:
            runner.train_loop.dataloader.dataset.pending_state = \
                checkpoint[STREAM_CHECKPOINT_KEY]
            return
        if CHECKPOINT_KEY not in checkpoint:
            return
        sampler = find_train_sampler(runner.train_loop.dataloader)
        if sampler is not None:
            sampler.pending_state = checkpoint[CHECKPOINT_KEY]
