# Copyright (c) cllip_mm contributors. All rights reserved.
"""An iteration-based train loop that resumes in O(1) instead of replaying batches."""
import logging

from mmengine.logging import print_log
from mmengine.runner.loops import IterBasedTrainLoop, _InfiniteDataloaderIterator

from cllip_mm.registry import LOOPS
from ..hooks.sampler_state_hook import SamplerStateHook, find_train_sampler
from ..resume import SAMPLE_STATE_KEY, ResumableStream, decode_sample_state


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` whose resume seeks the sampler instead of replaying.

    MMEngine 0.10.7's loop resumes at iteration ``k`` by calling ``next()`` on the
    dataloader ``k`` times, loading and decoding every consumed batch again. This loop
    instead starts the sampler after the ``k * batch_size`` indices each rank consumed
    (from the checkpoint's ``train_sampler`` state, saved by :class:`SamplerStateHook`,
    which this loop registers), so resume costs the same at any ``k``, and the resumed
    run draws exactly the sample indices of an uninterrupted one from iteration
    ``k + 1`` on. Random augmentations are not replayed (their generators restart).

    Needs one side of the resume contract (:mod:`cllip_mm.engine.resume`): a
    :class:`~cllip_mm.engine.resume.ResumableSampler` (e.g.
    :class:`~cllip_mm.datasets.ResumableInfiniteSampler`) under a plain
    ``BatchSampler``, or a :class:`~cllip_mm.engine.resume.ResumableStream` dataset
    (e.g. :class:`~cllip_mm.datasets.RegionTextShardStream`: the loop pops the sample
    states (:data:`~cllip_mm.engine.resume.SAMPLE_STATE_KEY`) from each batch and keeps
    the last state of every worker in :attr:`stream_states`); otherwise it warns and
    replays like the parent class.
    Arguments are those of :class:`mmengine.runner.IterBasedTrainLoop`.
    """

    def __init__(self, runner, dataloader, *args, **kwargs) -> None:
        super().__init__(runner, dataloader, *args, **kwargs)
        #: global dataloader worker -> stream state after its last consumed batch
        self.stream_states: dict = {}
        if not any(isinstance(h, SamplerStateHook) for h in runner.hooks):
            runner.register_hook(SamplerStateHook())

    def _restart_dataloader(self) -> None:
        """Drop the iterator (and workers) made in ``__init__``, start a new one."""
        old = getattr(self.dataloader_iterator, '_iterator', None)
        if hasattr(old, '_shutdown_workers'):
            old._shutdown_workers()
        if getattr(self.dataloader, '_iterator', None) is not None:
            self.dataloader._iterator = None  # persistent workers hold the old state
        self.dataloader_iterator = _InfiniteDataloaderIterator(self.dataloader)

    def _seek_stream(self) -> bool:
        dataset = self.dataloader.dataset
        state = dataset.pending_state
        if state is None:
            return False
        dataset.load_state_dict(state)
        dataset.pending_state = None
        self.stream_states = {int(g): s for g, s in state['states'].items()
                              if int(g) // max(self.dataloader.num_workers, 1)
                              == self.runner.rank}
        self._restart_dataloader()
        print_log(f'Resumed the stream at iteration {self._iter} ({len(state["states"])} '
                  'worker states) without replaying it', logger='current')
        return True

    def _seek(self) -> bool:
        """Start the sampler after the consumed samples; False if it cannot."""
        if isinstance(self.dataloader.dataset, ResumableStream):
            if self._seek_stream():
                return True
            print_log(f'{type(self).__name__}: the checkpoint has no stream state; '
                      'replaying the consumed batches instead', logger='current',
                      level=logging.WARNING)
            return False
        sampler = find_train_sampler(self.dataloader)
        batch_size = self.dataloader.batch_size
        if sampler is None or not batch_size:
            print_log(f'{type(self).__name__}: the train dataloader has no resumable '
                      'sampler under a plain BatchSampler; replaying the consumed '
                      'batches instead', logger='current', level=logging.WARNING)
            return False
        state = sampler.pending_state
        if state is not None:
            sampler.load_state_dict(state)
            if state['num_consumed'] != self._iter * batch_size:
                print_log(f'{type(self).__name__}: the checkpoint consumed '
                          f'{state["num_consumed"]} samples per rank, not iter x '
                          f'batch_size = {self._iter * batch_size}; following the '
                          'checkpoint', logger='current', level=logging.WARNING)
        else:
            print_log(f'{type(self).__name__}: the checkpoint has no sampler state; '
                      f'starting the sampler (seed {sampler.seed}) after '
                      f'{self._iter} x {batch_size} samples', logger='current',
                      level=logging.WARNING)
            sampler.set_start(self._iter * batch_size)
        sampler.pending_state = None
        # the iterator made in __init__ prefetched from position 0: start a new one
        self._restart_dataloader()
        print_log(f'Resumed the sampler at iteration {self._iter} ({sampler.start} '
                  'samples per rank consumed) without replaying them', logger='current')
        return True

    def _keep_stream_state(self, data_batch) -> None:
        """Pop the sample states from a batch; keep the last one as its worker's."""
        if isinstance(data_batch, dict) and SAMPLE_STATE_KEY in data_batch:
            state = decode_sample_state(data_batch.pop(SAMPLE_STATE_KEY)[-1])
            self.stream_states[state['worker']] = state

    def run(self):
        """Launch training (``IterBasedTrainLoop.run`` without the replay)."""
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0 and not self._seek():
            for _ in range(self._iter):
                self._keep_stream_state(next(self.dataloader_iterator))
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self._keep_stream_state(data_batch)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0
                         or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model
