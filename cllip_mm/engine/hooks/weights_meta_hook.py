# Copyright (c) cllip_mm contributors. All rights reserved.
"""Carry what the weights need (activations, tokenizer) in every training checkpoint."""
from typing import Dict, Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop

from cllip_mm.registry import HOOKS
from cllip_mm.utils.weights_meta import (
    META_KEY,
    check_pretrained_init,
    compare_weights_meta,
    model_weights_meta,
    read_weights_meta,
)


def _model(runner):
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


def _training(runner) -> bool:
    return isinstance(getattr(runner, '_train_loop', None), BaseLoop)


@HOOKS.register_module()
class WeightsMetaHook(Hook):
    """Writes :func:`~cllip_mm.utils.weights_meta.model_weights_meta` of the model
    (activation of each tower, tokenizer type and vocabulary digest) into every
    checkpoint as ``checkpoint['meta']['cllip_mm_arch']``; when training, checks the
    model against the checkpoints it starts from: the model's own ``init_cfg`` of type
    ``Pretrained`` (e.g. a CLOC continued from a converted CLIP checkpoint) before the
    weights are initialised, and ``load_from`` / resume checkpoints when they are loaded.
    A mismatch raises ``WeightsMetaMismatch`` naming the checkpoint, the key and both
    values; a checkpoint without the meta is a logged warning.

    ``configs/_base_/default_runtime.py`` lists it in ``custom_hooks``. Evaluation
    (``tools/test.py``, ``tools/benchmark.py``) checks its checkpoint itself.
    """
    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._meta: Optional[Dict[str, str]] = None

    def _model_meta(self, runner) -> Dict[str, str]:
        if self._meta is None:  # the architecture does not change during a run
            self._meta = model_weights_meta(_model(runner))
        return self._meta

    def before_run(self, runner) -> None:
        if _training(runner):  # before Runner.train initialises the weights
            check_pretrained_init(_model(runner))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})[META_KEY] = dict(self._model_meta(runner))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not _training(runner):
            return
        name = runner.cfg.get('load_from') or 'the checkpoint loaded'
        compare_weights_meta(read_weights_meta(checkpoint), self._model_meta(runner),
                             str(name), f'the model of {runner.cfg.filename or runner.experiment_name}')
